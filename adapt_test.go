package redisws

import (
	"bytes"
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/caddyserver/caddy/v2/caddyconfig"
)

func TestCaddyfileHidesRedisPassword(t *testing.T) {
	_, err := parse("redis_ws chat {\n\tredis redis://:hunter2@127.0.0.1:notaport\n}")
	if err == nil || strings.Contains(err.Error(), "hunter2") {
		t.Fatalf("want an error without the password, got %v", err)
	}
}

// The Caddyfile of the README adapts to the JSON in testdata; run with
// -update to rewrite it after an intended change.
func TestAdaptCaddyfile(t *testing.T) {
	for _, name := range []string{"Caddyfile.example"} {
		src, err := os.ReadFile(name)
		if err != nil {
			t.Fatal(err)
		}
		t.Setenv("PORT", "8001")
		t.Setenv("ADMIN_PORT", "2019")
		t.Setenv("REDIS_PORT", "6379")
		got, warnings, err := caddyconfig.GetAdapter("caddyfile").Adapt(src, map[string]any{"filename": name})
		if err != nil {
			t.Fatalf("adapting %s: %v", name, err)
		}
		if len(warnings) > 0 {
			t.Errorf("adapting %s: warnings %v", name, warnings)
		}
		var pretty bytes.Buffer
		if err := json.Indent(&pretty, got, "", "\t"); err != nil {
			t.Fatal(err)
		}
		pretty.WriteByte('\n')
		golden := filepath.Join("testdata", name+".json")
		if *updateGolden {
			if err := os.WriteFile(golden, pretty.Bytes(), 0o644); err != nil {
				t.Fatal(err)
			}
		}
		want, err := os.ReadFile(golden)
		if err != nil {
			t.Fatal(err)
		}
		if !bytes.Equal(pretty.Bytes(), want) {
			t.Errorf("adapting %s:\n%s\nwant (%s):\n%s", name, pretty.Bytes(), golden, want)
		}
	}
}
