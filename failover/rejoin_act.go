package failover

import (
	"github.com/pgquorum/pgquorum/api"
	"github.com/pgquorum/pgquorum/repmgr"
)

// rejoinRunning is the rejoin of a former primary whose database runs,
// with failover.auto_rejoin, once d's primary is promoted: started by
// hand or by a service manager as a primary, it is the deposed primary
// and the rejoin stops and rewinds it (Fresh: even after a rejoin of d
// succeeded, this is a new episode); as a standby, while the rejoin of d
// has not succeeded or repmgr still records it as a primary, the rejoin
// checks that it streams from d's primary and records it as its standby.
// handled is false when none of this applies.
func rejoinRunning(o Options, f actorFacts, d api.Decision, mem actorMemory) (in actIntent, handled bool) {
	if !o.AutoRejoin || d.Primary == o.Self || d.PromotedAt == nil {
		return actIntent{}, false
	}
	a := mem.Attempts[actKey{d.Epoch, api.ActionRejoin}]
	me, registered := repmgr.ByName(f.Facts.Nodes, o.Self)
	switch {
	case !f.Facts.InRecovery:
		if !registered {
			return actIntent{}, false
		}
		in = rejoinPrimary(f, d)
		for i := range in.Run {
			in.Run[i].Fresh = a != nil && a.ok
		}
		return in, true
	case a != nil && a.ok:
		return actIntent{}, false
	case a != nil && a.n > 0, registered && me.Type == repmgr.TypePrimary:
		return rejoinPrimary(f, d), true
	}
	return actIntent{}, false
}
