// Package internal holds the layers of redis_ws below the Caddy adapter;
// this test keeps their imports running one way.
package internal

import (
	"go/parser"
	"go/token"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
)

const module = "github.com/caddy-redis-ws/caddy-redis-ws"

// allowed names, for each package of the module, the module's packages it
// may import: root → fanout → bus → frame, and protocol, public, from
// anywhere; internal/token (signed tokens) sits beside the layers, for the
// adapter's authentication provider; e2e (the process tests) sees the
// layers from outside, and internal/testkit is what its tests and the
// root's share. A package not listed may import none of them.
var allowed = map[string][]string{
	"":                 {"internal/fanout", "internal/bus", "internal/frame", "protocol", "internal/chatjson", "internal/token", "internal/testkit"},
	"e2e":              {"", "internal/fanout", "internal/bus", "internal/frame", "protocol", "internal/chatjson", "internal/testkit"},
	"internal/fanout":  {"internal/bus", "internal/frame", "protocol"},
	"internal/bus":     {"internal/frame", "protocol"},
	"internal/frame":   {"protocol"},
	"internal/testkit": {"internal/bus", "internal/frame", "protocol"},
}

// caddyFree are the packages that must not import Caddy: the core knows
// only options with time.Duration, an injected logger and collectors.
var caddyFree = []string{"internal/fanout", "internal/bus", "internal/frame", "internal/token", "internal/testkit", "protocol"}

// TestImportsRunOneWay parses every Go file of the module's packages
// (tests included) and fails on an import that runs up a layer, or on a
// core package that imports Caddy.
func TestImportsRunOneWay(t *testing.T) {
	imports := moduleImports(t, "..")
	for pkg, deps := range imports {
		for dep, file := range deps {
			if !strings.HasPrefix(dep, module) {
				if strings.HasPrefix(dep, "github.com/caddyserver/") && contains(caddyFree, pkg) {
					t.Errorf("%s imports %s: the core must not know Caddy", file, dep)
				}
				if pkg == "protocol" && strings.Contains(strings.SplitN(dep, "/", 2)[0], ".") {
					t.Errorf("%s imports %s: package protocol is stdlib only", file, dep)
				}
				continue
			}
			rel := strings.TrimPrefix(strings.TrimPrefix(dep, module), "/")
			if rel == pkg {
				continue // an external test package of its own
			}
			if !contains(allowed[pkg], rel) {
				t.Errorf("%s imports %s: %q may import only %q", file, dep, pkg, allowed[pkg])
			}
		}
	}
	for _, want := range []string{"", "internal/fanout", "internal/bus", "internal/frame", "protocol"} {
		if _, ok := imports[want]; !ok {
			t.Errorf("package %q not found: the test no longer sees the layers", want)
		}
	}
}

// moduleImports maps each package directory under root (relative, "" for
// root itself) to its imports, each with a file that makes it. cmd/ (the
// binaries) and testdata are left out.
func moduleImports(t *testing.T, root string) map[string]map[string]string {
	t.Helper()
	out := map[string]map[string]string{}
	fset := token.NewFileSet()
	err := filepath.WalkDir(root, func(path string, d os.DirEntry, err error) error {
		if err != nil {
			return err
		}
		name := d.Name()
		if d.IsDir() {
			if path != root && (strings.HasPrefix(name, ".") || name == "testdata" || name == "cmd" || name == "examples" || name == "bench" || name == "docs") {
				return filepath.SkipDir
			}
			return nil
		}
		if !strings.HasSuffix(name, ".go") {
			return nil
		}
		f, err := parser.ParseFile(fset, path, nil, parser.ImportsOnly)
		if err != nil {
			return err
		}
		dir, _ := filepath.Rel(root, filepath.Dir(path))
		pkg := filepath.ToSlash(dir)
		if pkg == "." {
			pkg = ""
		}
		if pkg == "internal" {
			return nil // this test
		}
		if out[pkg] == nil {
			out[pkg] = map[string]string{}
		}
		for _, im := range f.Imports {
			p, _ := strconv.Unquote(im.Path.Value)
			out[pkg][p] = path
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	return out
}

func contains(list []string, s string) bool {
	for _, x := range list {
		if x == s {
			return true
		}
	}
	return false
}
