package main

import (
	"math/bits"
	"sort"
	"time"
)

// hist is a log-linear histogram of durations in microseconds, in the
// spirit of HdrHistogram: values below 256 µs are exact, above that every
// power of two is split into 128 buckets (relative error below 0.8%).
// Values above histMaxUs are clamped into the top bucket; the exact
// maximum is kept separately.
type hist struct {
	counts [histBuckets]uint32
	n      uint64
	sumUs  uint64
	maxUs  uint64
}

const (
	histSubBits = 7
	histSub     = 1 << histSubBits // 128
	histMaxBits = 28               // 2^28 µs ≈ 268 s, far beyond any bounded run
	histMaxUs   = 1<<histMaxBits - 1
	histBuckets = (histMaxBits-histSubBits)*histSub + histSub
)

func histIndex(v uint64) int {
	if v > histMaxUs {
		v = histMaxUs
	}
	s := bits.Len64(v) - (histSubBits + 1)
	if s < 0 {
		s = 0
	}
	return s*histSub + int(v>>uint(s))
}

// histValue returns the midpoint of bucket i in µs.
func histValue(i int) uint64 {
	if i < 2*histSub {
		return uint64(i)
	}
	s := i/histSub - 1
	top := uint64(i - s*histSub)
	return top<<uint(s) + (uint64(1)<<uint(s))/2
}

func (h *hist) record(us uint64) {
	h.counts[histIndex(us)]++
	h.n++
	h.sumUs += us
	if us > h.maxUs {
		h.maxUs = us
	}
}

func (h *hist) merge(o *hist) {
	for i, c := range o.counts {
		h.counts[i] += c
	}
	h.n += o.n
	h.sumUs += o.sumUs
	if o.maxUs > h.maxUs {
		h.maxUs = o.maxUs
	}
}

// quantile returns the value at quantile q (0..1) in µs.
func (h *hist) quantile(q float64) uint64 {
	if h.n == 0 {
		return 0
	}
	rank := uint64(q * float64(h.n))
	if rank >= h.n {
		rank = h.n - 1
	}
	var acc uint64
	for i, c := range h.counts {
		acc += uint64(c)
		if acc > rank {
			v := histValue(i)
			if v > h.maxUs {
				v = h.maxUs
			}
			return v
		}
	}
	return h.maxUs
}

func (h *hist) meanUs() float64 {
	if h.n == 0 {
		return 0
	}
	return float64(h.sumUs) / float64(h.n)
}

// durQuantiles returns p50, p99 and max of a small sample of durations
// (connection times: one per connection, so raw samples are fine).
func durQuantiles(d []time.Duration) (p50, p99, maxv time.Duration) {
	if len(d) == 0 {
		return 0, 0, 0
	}
	s := append([]time.Duration(nil), d...)
	sort.Slice(s, func(i, j int) bool { return s[i] < s[j] })
	at := func(q float64) time.Duration {
		i := int(q * float64(len(s)))
		if i >= len(s) {
			i = len(s) - 1
		}
		return s[i]
	}
	return at(0.50), at(0.99), s[len(s)-1]
}

func usToMs(us uint64) float64 { return round3(float64(us) / 1000) }

func durMs(d time.Duration) float64 { return round3(float64(d) / float64(time.Millisecond)) }

func round3(f float64) float64 {
	if f < 0 {
		return -float64(int64(-f*1000+0.5)) / 1000
	}
	return float64(int64(f*1000+0.5)) / 1000
}
