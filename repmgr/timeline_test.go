package repmgr

import (
	"reflect"
	"strings"
	"testing"
)

func TestParseTimelineHistory(t *testing.T) {
	tests := []struct {
		name, text string
		want       []TimelineSwitch
		err        string
	}{
		{"as PostgreSQL 15 writes it", "1\t0/3000000\tno recovery target specified\n\n2\t0/5000000\tno recovery target specified\n3\t0/70BC648\tno recovery target specified\n",
			[]TimelineSwitch{{1, 0x3000000}, {2, 0x5000000}, {3, 0x70BC648}}, ""},
		{"comments and blank lines", "# a comment\n1\t0/3000000\tbefore 2000-01-01 # reason\n\n", []TimelineSwitch{{1, 0x3000000}}, ""},
		{"empty", "", nil, ""},
		{"a high location", "7\t1A/FF000028\tx\n", []TimelineSwitch{{7, 0x1AFF000028}}, ""},
		{"no switch point", "1\n", nil, "want a timeline and a switch point"},
		{"not a timeline", "x\t0/3000000\n", nil, "is not a timeline"},
		{"not a location", "1\t3000000\n", nil, "want X/X"},
		{"timelines going back", "2\t0/5000000\n1\t0/6000000\n", nil, "must increase"},
		{"switch points going back", "1\t0/5000000\n2\t0/4000000\n", nil, "must increase"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := ParseTimelineHistory(tt.text)
			if tt.err != "" {
				if err == nil || !strings.Contains(err.Error(), tt.err) {
					t.Fatalf("err = %v, want %q", err, tt.err)
				}
				return
			}
			if err != nil || !reflect.DeepEqual(got, tt.want) {
				t.Errorf("got %v, %v; want %v", got, err, tt.want)
			}
		})
	}
}

func TestTimelinesSwitchOf(t *testing.T) {
	tl := Timelines{Current: 3, History: []TimelineSwitch{{1, 10}, {2, 20}}}
	for _, c := range []struct {
		tli  int
		want int64
		ok   bool
	}{{1, 10, true}, {2, 20, true}, {3, 0, false}, {4, 0, false}} {
		if got, ok := tl.SwitchOf(c.tli); got != c.want || ok != c.ok {
			t.Errorf("SwitchOf(%d) = %d, %v; want %d, %v", c.tli, got, ok, c.want, c.ok)
		}
	}
}
