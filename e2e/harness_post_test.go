package e2e

import (
	"encoding/json"
	"io"
	"net/http"
	"strings"
	"testing"
)

// postResult is the JSON answer of a POST that published, as a client
// reads it (the server writes it from post.go's postAnswer).
type postResult struct {
	Channel   string `json:"channel"`
	Offset    int64  `json:"offset,omitempty"`
	Epoch     string `json:"epoch,omitempty"`
	Duplicate bool   `json:"duplicate,omitempty"`
}

// postReply is what a POST got: its status, header and body, and the
// answer of a 200.
type postReply struct {
	Status int
	Header http.Header
	Body   string
	Answer postResult
}

// postMessage POSTs body to url with header and returns the answer; the
// JSON is decoded for a 200.
func postMessage(t testing.TB, url, body string, header http.Header) postReply {
	t.Helper()
	return postMessageVia(t, noKeepAliveClient, url, body, header)
}

// postMessageVia is postMessage through client.
func postMessageVia(t testing.TB, client *http.Client, url, body string, header http.Header) postReply {
	t.Helper()
	req, err := http.NewRequest(http.MethodPost, url, strings.NewReader(body))
	if err != nil {
		t.Fatalf("POST %s: %v", url, err)
	}
	for k, v := range header {
		req.Header[k] = v
	}
	resp, err := client.Do(req)
	if err != nil {
		t.Fatalf("POST %s: %v", url, err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(io.LimitReader(resp.Body, 1<<20))
	r := postReply{Status: resp.StatusCode, Header: resp.Header, Body: string(b)}
	if resp.StatusCode == http.StatusOK {
		if err := json.Unmarshal(b, &r.Answer); err != nil {
			t.Fatalf("POST %s: 200 with a body that is not the JSON answer: %q (%v)", url, b, err)
		}
	}
	return r
}

// mustPost POSTs and fails the test unless the answer is 200.
func mustPost(t testing.TB, url, body string) postResult {
	t.Helper()
	r := postMessage(t, url, body, nil)
	if r.Status != http.StatusOK {
		t.Fatalf("POST %s: %d %q", url, r.Status, r.Body)
	}
	return r.Answer
}
