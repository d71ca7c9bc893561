package grader

import (
	"slices"

	"nslab/labs"
)

// Needs says what to observe for an exercise, so the caller collects
// only that.
type Needs struct {
	StateNodes map[string]*StateNeeds // node -> what parts to read
	Probes     []ProbeNeed            // one per behaviour check (and per packet check with Generate)
	Commands   []CommandNeed
	Packets    bool
}

// StateNeeds says which optional parts of a node's state to read. Links,
// addresses, routes and rules are always read.
type StateNeeds struct {
	Sysctls   []string // dotted net.* keys, in check order, without duplicates
	NFT       bool
	Sockets   bool
	Conntrack bool
	Neighbors bool
}

// ProbeNeed asks the caller to run the probe the check describes (ping,
// tcp, udp, http, pmtu; for a packet check, its Generate traffic) and
// store the result in Observations.Probes[CheckID].
type ProbeNeed struct {
	CheckID string
	Check   labs.Check
}

// CommandNeed asks the caller to run Run as root of Node and store the
// result in Observations.Commands[CheckID].
type CommandNeed struct {
	CheckID, Node, Run string
}

// Parts of NodeState.Errors the grader consults, so a check on a part
// that could not be read fails with the reason. A single sysctl that
// could not be read is reported as "sysctl:<key>" (sysctlPart).
const (
	PartLinks     = "links"
	PartAddrs     = "addrs"
	PartRoutes    = "routes"
	PartRules     = "rules"
	PartNeighbors = "neighbors"
	PartSysctls   = "sysctls"
	PartNFT       = "nft"
	PartSockets   = "sockets"
	PartConntrack = "conntrack"
)

func sysctlPart(key string) string { return "sysctl:" + key }

// Plan lists what Grade will look at for ex. Checks without an id are
// keyed "check<N>" (1-based position), as Grade keys them.
func Plan(ex *labs.Exercise) Needs {
	n := Needs{StateNodes: map[string]*StateNeeds{}}
	if ex == nil {
		return n
	}
	state := func(node string) *StateNeeds {
		s := n.StateNodes[node]
		if s == nil {
			s = &StateNeeds{}
			n.StateNodes[node] = s
		}
		return s
	}
	for i := range ex.Checks {
		c := checkWithID(&ex.Checks[i], i)
		switch {
		case c.Link != nil, c.Address != nil, c.Route != nil, c.Rule != nil:
			state(c.Node())
		case c.Neighbor != nil:
			state(c.Neighbor.Node).Neighbors = true
		case c.Sysctl != nil:
			s := state(c.Sysctl.Node)
			key := normSysctlKey(c.Sysctl.Key)
			if !slices.Contains(s.Sysctls, key) {
				s.Sysctls = append(s.Sysctls, key)
			}
		case c.NFTables != nil:
			state(c.NFTables.Node).NFT = true
		case c.Socket != nil:
			state(c.Socket.Node).Sockets = true
		case c.Conntrack != nil:
			state(c.Conntrack.Node).Conntrack = true
		case c.Ping != nil, c.TCP != nil, c.UDP != nil, c.HTTP != nil, c.PMTU != nil:
			n.Probes = append(n.Probes, ProbeNeed{CheckID: c.ID, Check: *c})
		case c.Packets != nil:
			n.Packets = true
			if c.Packets.Generate != nil {
				n.Probes = append(n.Probes, ProbeNeed{CheckID: c.ID, Check: *c})
			}
			// The node's MACs tell which captured frames it received.
			if c.Packets.Node != "" {
				state(c.Packets.Node)
			}
		case c.Command != nil:
			n.Commands = append(n.Commands, CommandNeed{CheckID: c.ID, Node: c.Command.Node, Run: c.Command.Run})
		case c.Answer != nil:
			n.Commands = append(n.Commands, CommandNeed{CheckID: c.ID, Node: c.Answer.Node, Run: answerCommand(c.Answer)})
			if c.Answer.FromPacket != nil {
				n.Packets = true
			}
		}
	}
	return n
}
