package failover

import (
	"errors"
	"strings"
	"testing"

	"github.com/pgquorum/pgquorum/repmgr"
)

func TestClassifyFork(t *testing.T) {
	s2 := repmgr.Node{ID: 2, Name: "node2"}
	tests := []struct {
		name    string
		probe   forkProbe
		forked  bool
		whyPart string
	}{
		{"the chaos run: timeline 3 goes on past the fork", forkProbe{Primary: tl4, Standby: repmgr.StandbyEnd{Timeline: 3, End: 0x70BD000}},
			true, "forked off node2's timeline 4 at 0/70BC648: its WAL on timeline 3 goes on to 0/70BD000"},
		{"one byte past the fork", forkProbe{Primary: tl4, Standby: repmgr.StandbyEnd{Timeline: 3, End: 0x70BC649}}, true, "at 0/70BC648"},
		{"exactly at the fork: follows", forkProbe{Primary: tl4, Standby: repmgr.StandbyEnd{Timeline: 3, End: 0x70BC648}},
			false, "not past node2's fork at 0/70BC648"},
		{"behind the fork: follows", forkProbe{Primary: tl4, Standby: repmgr.StandbyEnd{Timeline: 3, End: 0x7000000}}, false, "not past"},
		{"an older timeline, past its own switch", forkProbe{Primary: tl4, Standby: repmgr.StandbyEnd{Timeline: 2, End: 0x5000001}},
			true, "forked off node2's timeline 4 at 0/5000000"},
		{"an older timeline, before its switch", forkProbe{Primary: tl4, Standby: repmgr.StandbyEnd{Timeline: 2, End: 0x4000000}}, false, "not past"},
		{"the primary's own timeline", forkProbe{Primary: tl4, Standby: repmgr.StandbyEnd{Timeline: 4, End: 0x9000000}}, false, "on the primary's timeline 4"},
		{"a timeline newer than the primary's", forkProbe{Primary: tl4, Standby: repmgr.StandbyEnd{Timeline: 5, End: 0x9000000}},
			true, "timeline 5, newer than node2's timeline 4"},
		{"a timeline not in the primary's history", forkProbe{Primary: repmgr.Timelines{Current: 4, History: []repmgr.TimelineSwitch{{Timeline: 1, Switch: 0x3000000}, {Timeline: 3, Switch: 0x7000000}}},
			Standby: repmgr.StandbyEnd{Timeline: 2, End: 0x100}}, true, "timeline 2 is not in the history"},
		{"the facts could not be read", forkProbe{Err: errors.New("permission denied"), Standby: repmgr.StandbyEnd{Timeline: 3, End: 0x70BD000}},
			false, "cannot tell whether its history forked: permission denied"},
		{"the standby's timeline unknown", forkProbe{Primary: tl4, Standby: repmgr.StandbyEnd{End: 0x70BD000}}, false, "timeline unknown"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			tt.probe.Node = s2
			v := classifyFork(tt.probe)
			if v.Forked != tt.forked || !strings.Contains(v.Why, tt.whyPart) {
				t.Errorf("classifyFork = %+v, want forked %v with %q", v, tt.forked, tt.whyPart)
			}
		})
	}
}
