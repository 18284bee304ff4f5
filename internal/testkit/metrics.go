package testkit

import (
	"fmt"
	"testing"

	dto "github.com/prometheus/client_model/go"
)

// CounterValue is the value of a Prometheus counter.
func CounterValue(t testing.TB, c interface{ Write(*dto.Metric) error }) float64 {
	t.Helper()
	var m dto.Metric
	if err := c.Write(&m); err != nil {
		t.Fatal(err)
	}
	return m.GetCounter().GetValue()
}

// SizeName is a size of bytes as the names of subtests and benchmarks
// write it: 1KiB, 64B.
func SizeName(n int) string {
	if n >= 1024 {
		return fmt.Sprintf("%dKiB", n/1024)
	}
	return fmt.Sprintf("%dB", n)
}
