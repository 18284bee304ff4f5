package e2e

import (
	"bytes"
	"encoding/json"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"

	redisws "github.com/caddy-redis-ws/caddy-redis-ws"
)

// readmeTokens is the README's section on signed tokens.
func readmeTokens(t *testing.T) string {
	t.Helper()
	readme, err := os.ReadFile("README.md")
	if err != nil {
		t.Fatal(err)
	}
	_, section, ok := strings.Cut(string(readme), "\n## Signed tokens: `redis_ws_token`\n")
	section, _, _ = strings.Cut(section, "\n## ")
	if !ok {
		t.Fatal("no section on signed tokens in README.md")
	}
	return section
}

// codeBlocks are the section's fenced blocks of one language.
func codeBlocks(section, lang string) []string {
	var blocks []string
	for _, part := range strings.Split(section, "```"+lang+"\n")[1:] {
		block, _, _ := strings.Cut(part, "```")
		blocks = append(blocks, block)
	}
	return blocks
}

// The README's Caddyfiles adapt (with the caddy binary: it has the
// standard modules), and its provider JSON has every field.
func TestReadmeTokenExamples(t *testing.T) {
	section := readmeTokens(t)
	adapted := 0
	for _, block := range codeBlocks(section, "caddyfile") {
		if strings.HasPrefix(block, "redis_ws_token [") {
			continue // the syntax
		}
		block = strings.ReplaceAll(block, "\t…\n", "")
		file := filepath.Join(t.TempDir(), "Caddyfile")
		if err := os.WriteFile(file, []byte(block), 0o600); err != nil {
			t.Fatal(err)
		}
		if _, errOut, err := caddyCLI(t, "adapt", "--config", file, "--adapter", "caddyfile"); err != nil {
			t.Errorf("caddy adapt of the README's\n%s: %v\n%s", block, err, errOut)
		}
		adapted++
	}
	if adapted != 2 {
		t.Errorf("%d Caddyfiles adapted; want the logs' and the example's", adapted)
	}
	var handler struct {
		Providers map[string]json.RawMessage `json:"providers"`
	}
	jsons := codeBlocks(section, "json")
	if err := json.Unmarshal([]byte(jsons[len(jsons)-1]), &handler); err != nil {
		t.Fatal(err)
	}
	raw := handler.Providers["redis_ws_token"]
	dec := json.NewDecoder(bytes.NewReader(raw))
	dec.DisallowUnknownFields()
	var a redisws.TokenAuth
	if err := dec.Decode(&a); err != nil {
		t.Fatalf("the README's provider JSON: %v", err)
	}
	if err := a.Validate(); err != nil {
		t.Fatalf("the README's provider JSON: %v", err)
	}
	at := reflect.TypeOf(a)
	for i := range at.NumField() {
		name, _, _ := strings.Cut(at.Field(i).Tag.Get("json"), ",")
		if name == "" || name == "-" {
			continue
		}
		// The key settings other than the example's are named after it.
		if !strings.Contains(string(raw), `"`+name+`"`) && !strings.Contains(section, "`\""+name+"\"`") {
			t.Errorf("the README's provider JSON leaves out %q", name)
		}
	}
}
