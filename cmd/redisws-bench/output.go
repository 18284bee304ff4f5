package main

import (
	"encoding/json"
	"fmt"
	"os"
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
