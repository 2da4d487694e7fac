package orderflow

import (
	"math/rand/v2"
	"slices"
	"strings"
	"testing"

	"github.com/stretchr/testify/assert"
)

// plainEndByBytes is plainEnd one byte at a time.
func plainEndByBytes(s string, i int) int {
	for i < len(s) && plain[s[i]] {
		i++
	}
	return i
}

// TestPlainEndFindsEveryByteToEscape puts each byte value at each place of
// strings long enough for the eight-byte loop, among plain bytes, and
// expects plainEnd to stop where a byte-by-byte loop does.
func TestPlainEndFindsEveryByteToEscape(t *testing.T) {
	t.Parallel()
	for n := range 26 {
		base := []byte(strings.Repeat("aZ9 ~\x7f.-", 4)[:n])
		for at := range n {
			for c := range 256 {
				b := slices.Clone(base)
				b[at] = byte(c)
				s := string(b)
				for from := range min(n, 3) {
					if got, want := plainEnd(s, from), plainEndByBytes(s, from); got != want {
						t.Fatalf("plainEnd(%q, %d) = %d, want %d", s, from, got, want)
					}
				}
			}
		}
	}
}

// TestPlainEndFindsTheFirstOfSeveral checks that plainEnd stops at the
// first byte to escape when a word holds several, whose borrows could
// otherwise be taken for an earlier one.
func TestPlainEndFindsTheFirstOfSeveral(t *testing.T) {
	t.Parallel()
	special := []byte{0x00, 0x1f, '"', '&', '<', '>', '\\', 0x80, 0xe2, 0xff}
	r := rand.New(rand.NewPCG(1, 2))
	b := make([]byte, 40)
	for range 20_000 {
		for k := range b {
			b[k] = byte(0x20 + r.IntN(0x60))
			if r.IntN(6) == 0 {
				b[k] = special[r.IntN(len(special))]
			}
		}
		s := string(b[:r.IntN(len(b)+1)])
		from := r.IntN(len(s) + 1)
		assert.Equal(t, plainEndByBytes(s, from), plainEnd(s, from), "%q from %d", s, from)
	}
}
