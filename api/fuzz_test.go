package api

import (
	"strconv"
	"strings"
	"testing"
)

// FuzzParseBytes checks, for any string s (as ?lag= and
// failover.switchover_max_lag give it) and any count n with a unit:
//   - ParseBytes never panics, and a count it returns is from 0 to 2^62;
//   - a count it returns, written as a plain number, parses to itself;
//   - n written with each unit, in any case and spacing, parses to n times
//     the unit, or is refused for being over 2^62, never wrapped around.
func FuzzParseBytes(f *testing.F) {
	for _, s := range []string{"16777216", "16MB", "16 mb", "512kB", "1TB", "0", "-1", "+5", "9223372036854775807", "4611686018427387904b", "5 5MB", "MB", "1e3", "0x10"} {
		f.Add(s, int64(16))
	}
	f.Fuzz(func(t *testing.T, s string, n int64) {
		got, err := ParseBytes(s)
		if err == nil {
			if got < 0 || got > 1<<62 {
				t.Fatalf("ParseBytes(%q) = %d, out of range", s, got)
			}
			if again, err := ParseBytes(strconv.FormatInt(got, 10)); err != nil || again != got {
				t.Fatalf("ParseBytes(%q) = %d, but that number parses as %d, %v", s, got, again, err)
			}
		} else if !strings.Contains(err.Error(), strconv.Quote(s)) {
			t.Fatalf("ParseBytes(%q): error %q does not quote the input", s, err)
		}
		if n < 0 {
			return
		}
		for _, u := range byteUnits {
			for _, written := range []string{strconv.FormatInt(n, 10) + u.suffix, " " + strconv.FormatInt(n, 10) + " " + strings.ToUpper(u.suffix) + " "} {
				got, err := ParseBytes(written)
				over := n > (1<<62)/u.factor
				switch {
				case over && err == nil:
					t.Fatalf("ParseBytes(%q) = %d, want it refused (over 2^62)", written, got)
				case !over && (err != nil || got != n*u.factor):
					t.Fatalf("ParseBytes(%q) = %d, %v; want %d", written, got, err, n*u.factor)
				}
			}
		}
	})
}
