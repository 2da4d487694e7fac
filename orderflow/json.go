package orderflow

import (
	"math/bits"
	"strconv"
	"unicode/utf8"
)

// The saga stores an Order as JSON after every step, so encoding it is on
// the hot path: Order encodes itself by appending, without reflection. The
// output is what encoding/json would write for the struct tags.

// MarshalJSON encodes the order as its struct tags say. The saga engine
// uses AppendJSON instead.
func (o Order) MarshalJSON() ([]byte, error) { return o.AppendJSON(nil) }

// appendJSON appends the order's JSON to b. Its status must be valid.
func (o *Order) appendJSON(b []byte) []byte {
	b = append(b, `{"order_id":`...)
	b = appendJSONString(b, o.ID)
	b = append(b, `,"customer":`...)
	b = o.Customer.appendJSON(b)
	b = append(b, `,"items":`...)
	if o.Items == nil {
		b = append(b, "null"...)
	} else {
		b = append(b, '[')
		for i, it := range o.Items {
			if i > 0 {
				b = append(b, ',')
			}
			b = append(b, `{"name":`...)
			b = appendJSONString(b, it.Name)
			b = append(b, `,"price":`...)
			b = it.Price.appendJSON(b)
			b = append(b, `,"quantity":`...)
			b = strconv.AppendInt(b, int64(it.Quantity), 10)
			b = append(b, '}')
		}
		b = append(b, ']')
	}
	b = append(b, `,"total_amount":`...)
	b = o.Total.appendJSON(b)
	b = append(b, `,"status":`...)
	b = appendJSONString(b, statusNames[o.Status])
	for _, f := range [...]struct{ key, v string }{
		{`,"charge_id":`, o.ChargeID},
		{`,"reservation_id":`, o.ReservationID},
		{`,"tracking_number":`, o.TrackingNumber},
	} {
		if f.v != "" {
			b = append(b, f.key...)
			b = appendJSONString(b, f.v)
		}
	}
	return append(b, '}')
}

func (c *Customer) appendJSON(b []byte) []byte {
	b = append(b, `{"name":`...)
	b = appendJSONString(b, c.Name)
	b = append(b, `,"email":`...)
	b = appendJSONString(b, c.Email)
	b = append(b, `,"address":`...)
	b = appendJSONString(b, c.Address)
	return append(b, '}')
}

// appendJSONString appends s as a JSON string, escaped as encoding/json
// escapes it: quotes, backslashes, control characters, <, > and &, U+2028
// and U+2029, and invalid UTF-8 as U+FFFD.
func appendJSONString(b []byte, s string) []byte {
	const hex = "0123456789abcdef"
	b = append(b, '"')
	start := 0
	for i := 0; i < len(s); {
		i = plainEnd(s, i)
		if i == len(s) {
			break
		}
		c := s[i]
		if c < utf8.RuneSelf {
			b = append(b, s[start:i]...)
			switch c {
			case '"', '\\':
				b = append(b, '\\', c)
			case '\n':
				b = append(b, '\\', 'n')
			case '\r':
				b = append(b, '\\', 'r')
			case '\t':
				b = append(b, '\\', 't')
			case '\b':
				b = append(b, '\\', 'b')
			case '\f':
				b = append(b, '\\', 'f')
			default:
				b = append(b, '\\', 'u', '0', '0', hex[c>>4], hex[c&0xf])
			}
			i++
			start = i
			continue
		}
		r, size := utf8.DecodeRuneInString(s[i:])
		if r == utf8.RuneError && size == 1 {
			b = append(b, s[start:i]...)
			b = append(b, `\ufffd`...)
			i += size
			start = i
			continue
		}
		if r == '\u2028' || r == '\u2029' {
			b = append(b, s[start:i]...)
			b = append(b, '\\', 'u', '2', '0', '2', hex[r&0xf])
			i += size
			start = i
			continue
		}
		i += size
	}
	b = append(b, s[start:]...)
	return append(b, '"')
}

// plainEnd returns the index of the first byte at or after i that
// appendJSONString does not copy as it is (see plain), or len(s). It looks
// at eight bytes at a time: names, emails and IDs rarely hold such a byte,
// and a loop over the bytes was 9% of the instructions of loadgen's orders.
func plainEnd(s string, i int) int {
	const (
		ones  = 0x0101010101010101
		highs = 0x8080808080808080
	)
	// zero has the high bit of each byte of v that is zero; a borrow may
	// set bits above the first such byte, but never below it.
	zero := func(v uint64) uint64 { return (v - ones) &^ v }
	for ; i+8 <= len(s); i += 8 {
		w := uint64(s[i]) | uint64(s[i+1])<<8 | uint64(s[i+2])<<16 | uint64(s[i+3])<<24 |
			uint64(s[i+4])<<32 | uint64(s[i+5])<<40 | uint64(s[i+6])<<48 | uint64(s[i+7])<<56
		m := w | // not ASCII
			(w-ones*0x20)&^w | // a control character
			zero((w|ones*0x04)^ones*'&') | // '"' (0x22) or '&' (0x26)
			zero((w|ones*0x02)^ones*'>') | // '<' (0x3c) or '>' (0x3e)
			zero(w^ones*'\\')
		if m &= highs; m != 0 {
			return i + bits.TrailingZeros64(m)/8
		}
	}
	for i < len(s) && plain[s[i]] {
		i++
	}
	return i
}

// plain marks the bytes that appendJSONString copies as they are: ASCII
// but for control characters, quotes, backslashes, <, > and &.
var plain = func() (t [256]bool) {
	for c := 0x20; c < utf8.RuneSelf; c++ {
		t[c] = c != '"' && c != '\\' && c != '<' && c != '>' && c != '&'
	}
	return t
}()
