package saga

import (
	"encoding/binary"
	"math/bits"
)

// validJSON reports whether b is one valid JSON value, surrounded by
// optional whitespace: exactly what encoding/json.Valid reports, including
// its limit of 10,000 levels of nesting and its acceptance of any byte
// (valid UTF-8 or not) inside strings but control characters. Start checks
// every state it stores with it; it runs several times faster than
// json.Valid, whose scanner makes an indirect call per byte.
func validJSON(b []byte) bool {
	const maxDepth = 10000
	var stack []byte // '{' or '[' for each open container
	var small [32]byte
	stack = small[:0]
	i := skipSpace(b, 0)
	for {
		// A value is expected at b[i].
		if i >= len(b) {
			return false
		}
		switch c := b[i]; {
		case c == '{' || c == '[':
			if len(stack) >= maxDepth {
				return false
			}
			stack = append(stack, c)
			i = skipSpace(b, i+1)
			if i < len(b) && b[i] == closer(c) {
				i++
				stack = stack[:len(stack)-1]
				break
			}
			if c == '{' {
				if i = objectKey(b, i); i < 0 {
					return false
				}
			}
			continue
		case c == '"':
			if i = stringEnd(b, i); i < 0 {
				return false
			}
		case c == '-' || '0' <= c && c <= '9':
			if i = numberEnd(b, i); i < 0 {
				return false
			}
		case c == 't':
			if i = literalEnd(b, i, "true"); i < 0 {
				return false
			}
		case c == 'f':
			if i = literalEnd(b, i, "false"); i < 0 {
				return false
			}
		case c == 'n':
			if i = literalEnd(b, i, "null"); i < 0 {
				return false
			}
		default:
			return false
		}
		// A value ended at b[i]: close containers, or go on to the next
		// element.
		for {
			i = skipSpace(b, i)
			if len(stack) == 0 {
				return i == len(b)
			}
			if i >= len(b) {
				return false
			}
			top := stack[len(stack)-1]
			if b[i] == closer(top) {
				i++
				stack = stack[:len(stack)-1]
				continue
			}
			if b[i] != ',' {
				return false
			}
			i = skipSpace(b, i+1)
			if top == '{' {
				if i = objectKey(b, i); i < 0 {
					return false
				}
			}
			break
		}
	}
}

func closer(open byte) byte {
	if open == '{' {
		return '}'
	}
	return ']'
}

// skipSpace returns the index of the first byte at or after i that is not
// JSON whitespace.
func skipSpace(b []byte, i int) int {
	for i < len(b) {
		switch b[i] {
		case ' ', '\t', '\n', '\r':
			i++
		default:
			return i
		}
	}
	return i
}

// objectKey checks a key and its colon at b[i], and returns the index of
// the value after them, or -1.
func objectKey(b []byte, i int) int {
	if i >= len(b) || b[i] != '"' {
		return -1
	}
	if i = stringEnd(b, i); i < 0 {
		return -1
	}
	i = skipSpace(b, i)
	if i >= len(b) || b[i] != ':' {
		return -1
	}
	return skipSpace(b, i+1)
}

// stringEnd checks the string that starts at b[i] (a quote) and returns the
// index after its closing quote, or -1.
func stringEnd(b []byte, i int) int {
	for i++; i < len(b); {
		i = plainEnd(b, i)
		if i >= len(b) {
			return -1
		}
		switch c := b[i]; {
		case c == '"':
			return i + 1
		case c < 0x20:
			return -1
		}
		if i+1 >= len(b) {
			return -1
		}
		switch b[i+1] {
		case '"', '\\', '/', 'b', 'f', 'n', 'r', 't':
			i += 2
		case 'u':
			if i+6 > len(b) {
				return -1
			}
			for _, h := range b[i+2 : i+6] {
				if !('0' <= h && h <= '9' || 'a' <= h && h <= 'f' || 'A' <= h && h <= 'F') {
					return -1
				}
			}
			i += 6
		default:
			return -1
		}
	}
	return -1
}

// plainEnd returns the index of the first byte at or after i that may not
// appear in a JSON string as it is (see inString), or len(b). It looks at
// eight bytes at a time, which makes validJSON twice as fast on an order's
// state as a loop over the bytes did (BenchmarkValidJSON: 1.37 -> 0.65 us).
func plainEnd(b []byte, i int) int {
	const (
		ones  = 0x0101010101010101
		highs = 0x8080808080808080
	)
	for ; i+8 <= len(b); i += 8 {
		w := binary.LittleEndian.Uint64(b[i:])
		// The high bit of each byte that is below 0x20, a quote or a
		// backslash; a borrow may set bits above the first such byte, but
		// never below it.
		q, bs := w^(ones*'"'), w^(ones*'\\')
		if m := ((w-ones*0x20)&^w | (q-ones)&^q | (bs-ones)&^bs) & highs; m != 0 {
			return i + bits.TrailingZeros64(m)/8
		}
	}
	for i < len(b) && inString[b[i]] {
		i++
	}
	return i
}

// numberEnd checks the number that starts at b[i] and returns the index
// after it, or -1.
func numberEnd(b []byte, i int) int {
	digits := func(i int) int { // one or more
		start := i
		for i < len(b) && '0' <= b[i] && b[i] <= '9' {
			i++
		}
		if i == start {
			return -1
		}
		return i
	}
	if b[i] == '-' {
		i++
	}
	switch {
	case i < len(b) && b[i] == '0':
		i++
	default:
		if i = digits(i); i < 0 {
			return -1
		}
	}
	if i < len(b) && b[i] == '.' {
		if i = digits(i + 1); i < 0 {
			return -1
		}
	}
	if i < len(b) && (b[i] == 'e' || b[i] == 'E') {
		i++
		if i < len(b) && (b[i] == '+' || b[i] == '-') {
			i++
		}
		if i = digits(i); i < 0 {
			return -1
		}
	}
	return i
}

// literalEnd checks that lit is at b[i] and returns the index after it, or
// -1.
func literalEnd(b []byte, i int, lit string) int {
	if len(b)-i < len(lit) || string(b[i:i+len(lit)]) != lit {
		return -1
	}
	return i + len(lit)
}

// inString marks the bytes that may appear in a JSON string as they are:
// all but control characters, quotes and backslashes.
var inString = func() (t [256]bool) {
	for c := 0x20; c < 256; c++ {
		t[c] = c != '"' && c != '\\'
	}
	return t
}()
