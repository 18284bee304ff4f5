package main

// seqTrack follows the sequence numbers of one sender as seen by one
// subscriber. A bitmap of seen numbers tells a duplicate (seen before)
// from a reordering (not seen before, but lower than the highest seen).
// The bitmap grows with the highest sequence number up to seqBitmapMax;
// beyond that only the highest number is kept, and a number at or below
// it is counted as reordered (duplicates cannot be told apart there).
type seqTrack struct {
	last uint64
	bits []uint64
}

const seqBitmapMax = 1 << 22 // 4M sequence numbers = 512 KiB per sender per subscriber at most

// add records seq and reports whether it was a duplicate or arrived out of order.
func (t *seqTrack) add(seq uint64) (dup, reordered bool) {
	if seq < seqBitmapMax {
		w := int(seq >> 6)
		if w >= len(t.bits) {
			n := 2 * len(t.bits)
			if n < 64 {
				n = 64
			}
			for n <= w {
				n *= 2
			}
			if n > seqBitmapMax/64 {
				n = seqBitmapMax / 64
			}
			nb := make([]uint64, n)
			copy(nb, t.bits)
			t.bits = nb
		}
		m := uint64(1) << (seq & 63)
		if t.bits[w]&m != 0 {
			return true, false
		}
		t.bits[w] |= m
	} else if seq <= t.last {
		return false, true
	}
	if seq < t.last {
		return false, true
	}
	t.last = seq
	return false, false
}
