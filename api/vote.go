package api

// VoteProtocol is the version of VoteRequest and VoteAnswer. A node counts
// only answers of its own version.
const VoteProtocol = 1

// MaxVoteBody bounds a VoteRequest and a VoteAnswer on the wire.
const MaxVoteBody = 4 << 10

// VoteRequest asks a peer to vouch for the candidate: the node that sends it.
type VoteRequest struct {
	Protocol    int    `json:"protocol"`
	Candidate   string `json:"candidate"`    // repmgr node_name
	CandidateID int    `json:"candidate_id"` // repmgr node_id
	SystemID    string `json:"system_identifier"`
	Timeline    int    `json:"timeline"` // the candidate's current timeline
}

// VoteAnswer is a peer's answer, naming who answered: a vote counts only
// when the voter answered as the very node that was asked, a registered node
// other than the candidate, of the candidate's system identifier (a repmgr
// witness, which has its own, is known by its registration instead).
type VoteAnswer struct {
	Protocol  int    `json:"protocol"`
	Voter     string `json:"voter"`      // the voter's repmgr node_name
	VoterID   int    `json:"voter_id"`   // its repmgr node_id
	VoterType string `json:"voter_type"` // its repmgr type: primary, standby or witness
	SystemID  string `json:"system_identifier"`
	Timeline  int    `json:"timeline"`  // the voter's timeline (its own, for a witness)
	Candidate string `json:"candidate"` // whom this answer is about
	Granted   bool   `json:"granted"`
	Reason    string `json:"reason"`
	// LeaseMillis: when granted, how long the voter vouches for nobody else;
	// when refused because of an earlier vote, how long until it may change.
	LeaseMillis int64  `json:"lease_ms,omitempty"`
	LeaseHolder string `json:"lease_holder,omitempty"` // who holds the voter's lease
}
