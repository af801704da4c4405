package chaos

import (
	"fmt"
	"slices"
	"sort"
	"strings"
	"time"

	"github.com/pgquorum/pgquorum/api"
	"github.com/pgquorum/pgquorum/internal/lab"
)

// ParseSync reads CHAOS_SYNC: failover.synchronous for the run's cluster,
// off when empty.
func ParseSync(s string) (api.SyncMode, error) {
	s = strings.TrimSpace(s)
	if s == "" {
		return api.SyncOff, nil
	}
	if m := api.SyncMode(s); slices.Contains(api.SyncModes, m) {
		return m, nil
	}
	return "", fmt.Errorf("chaos: CHAOS_SYNC=%q: want one of %v", s, api.SyncModes)
}

// SyncReading is one answer of a node's /state about synchronous
// replication, with the instants the request left and the answer came
// back.
type SyncReading struct {
	Node       string
	Sent, Recv time.Time
	// Answered: the node answered with a synchronous object. A reading
	// without an answer tells nothing, and breaks a stretch of RPO 0.
	Answered bool
	// RPO0: the mode is on or strict and the status is not degraded
	// (api.SyncStatus.Degraded false, "RPO 0").
	RPO0 bool
	// Since and Epoch identify the committed synchronous state: Since
	// changes whenever the primary starts or stops waiting for standbys,
	// Epoch with every new primary.
	Since time.Time
	Epoch uint64
}

// ReadingOf turns a /state synchronous object into a reading.
func ReadingOf(node string, sent, recv time.Time, s *api.SyncStatus) SyncReading {
	r := SyncReading{Node: node, Sent: sent, Recv: recv}
	if s == nil {
		return r
	}
	r.Answered = true
	r.RPO0 = s.Mode != api.SyncOff && s.Mode != "" && !s.Degraded
	r.Epoch = s.Epoch
	if s.Since != nil {
		r.Since = *s.Since
	}
	return r
}

// MaxSyncGap is the longest time between two readings of a node that a
// stretch of RPO 0 may span: longer, and a fall back and a return to
// synchronous could both have happened unseen.
const MaxSyncGap = time.Second

// SyncHistory is every node's readings, each node's in the order they
// were sent (one poller per node asks one request at a time).
type SyncHistory struct {
	byNode map[string][]SyncReading
}

// NewSyncHistory sorts rs by node and time.
func NewSyncHistory(rs []SyncReading) *SyncHistory {
	h := &SyncHistory{byNode: map[string][]SyncReading{}}
	for _, r := range rs {
		h.byNode[r.Node] = append(h.byNode[r.Node], r)
	}
	for _, l := range h.byNode {
		sort.SliceStable(l, func(i, j int) bool { return l[i].Sent.Before(l[j].Sent) })
	}
	return h
}

// UnderRPO0 tells whether node said RPO 0 throughout [sent, done], the
// life of a write it acknowledged: a reading answered before the write
// left (its answer back by sent) and one asked after the acknowledgement
// (sent at or after done) both say RPO 0, so does every reading of the node
// between them, all of one committed state (same Epoch and Since), with no
// gap between two of them over MaxSyncGap.
//
// Why that is enough for the write to be on the synchronous set: a node's
// status turns degraded as soon as it applies the log entry that stops the
// waiting, before its database is told to stop waiting; and it says RPO 0
// again only once the primary was seen applying the set. So the database
// waited for a standby from before the write's commit to its
// acknowledgement, and PostgreSQL acknowledges a waiting commit only once a
// standby has it (or the list is emptied, which a degraded status would
// have shown). A write acknowledged while the status was degraded, or
// that no reading brackets, is not covered: failover.synchronous on
// promises nothing for it.
func (h *SyncHistory) UnderRPO0(node string, sent, done time.Time) bool {
	rs := h.byNode[node]
	// i: the last reading whose answer came back by sent.
	i := -1
	for k, r := range rs {
		if r.Recv.After(sent) {
			break
		}
		i = k
	}
	if i < 0 {
		return false
	}
	first := rs[i]
	if !first.Answered || !first.RPO0 {
		return false
	}
	for k := i + 1; k < len(rs); k++ {
		r, prev := rs[k], rs[k-1]
		if r.Sent.Sub(prev.Recv) > MaxSyncGap || !r.Answered || !r.RPO0 || r.Epoch != first.Epoch || !r.Since.Equal(first.Since) {
			return false
		}
		if !r.Sent.Before(done) {
			return true
		}
	}
	return false // no reading after the acknowledgement
}

// Protected tells which acknowledged writes the mode promises to keep:
// with strict, every one (a commit is never acknowledged without a
// standby); with on, those acknowledged under RPO 0 (UnderRPO0, by the
// node that acknowledged them, nodeOf naming it from the write's port);
// with off, none.
func Protected(mode api.SyncMode, h *SyncHistory, nodeOf func(port int) string, w lab.Write) bool {
	switch mode {
	case api.SyncStrict:
		return w.Port != 0
	case api.SyncOn:
		return w.Port != 0 && h.UnderRPO0(nodeOf(w.Port), w.Sent, w.Done)
	}
	return false
}
