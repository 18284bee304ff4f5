package main

import (
	"encoding/json"
	"fmt"
	"os"
	"sort"
)

// emitJSON prints v as one line of JSON on stdout, the result the bench
// scripts collect; everything else goes to stderr.
func emitJSON(v any) {
	b, err := json.Marshal(v)
	if err != nil {
		fmt.Fprintln(os.Stderr, "redisws-bench: json:", err)
		return
	}
	os.Stdout.Write(append(b, '\n'))
}

// logf prints a line of progress on stderr, unless -json.
func (c *config) logf(format string, a ...any) {
	if !c.jsonOnly {
		fmt.Fprintf(os.Stderr, format+"\n", a...)
	}
}

// codes lists a count by key, sorted by key: "(1006 x2, io_error x1)".
func codes(m map[string]int) string {
	if len(m) == 0 {
		return "(none)"
	}
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	s := "("
	for i, k := range keys {
		if i > 0 {
			s += ", "
		}
		s += fmt.Sprintf("%s x%d", k, m[k])
	}
	return s + ")"
}
