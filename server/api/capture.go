package api

import (
	"fmt"
	"slices"

	"time"

	"nslab/labs"
	labsv1 "nslab/proto/labs/v1"
	"nslab/sandbox"
)

// captureChunk is how much pcapng is batched into one stream message.
const captureChunk = 64 << 10

// chunkSender batches pcapng bytes into CaptureResponse messages.
type chunkSender struct {
	stream  labsv1.SandboxService_CaptureServer
	buf     []byte
	dropped func() int64
}

func (c *chunkSender) Write(p []byte) (int, error) {
	c.buf = append(c.buf, p...)
	if len(c.buf) >= captureChunk {
		return len(p), c.flush()
	}
	return len(p), nil
}

func (c *chunkSender) flush() error {
	if len(c.buf) == 0 {
		return nil
	}
	err := c.stream.Send(&labsv1.CaptureResponse{Data: c.buf, Dropped: c.dropped()})
	c.buf = nil // a fresh buffer: the sent one may still be referenced
	return err
}

// Capture streams the sandbox's captured frames as one pcapng file: the
// ring first, then (with follow) live frames until the client goes away.
// The node filter keeps the frames of every link the node is on.
func (s *SandboxServer) Capture(req *labsv1.CaptureRequest, stream labsv1.SandboxService_CaptureServer) error {
	ctx := stream.Context()
	sb, lab, err := s.liveSandbox(ctx, "sandbox", req.GetSandbox())
	if err != nil {
		return toStatus(err)
	}
	links := map[string]bool{}
	for _, seg := range lab.AllSegments() {
		onNode := req.GetNode() == ""
		for _, e := range seg.Endpoints {
			if ep, err := labs.ParseEndpoint(e); err == nil && ep.Node == req.GetNode() {
				onNode = true
			}
		}
		if onNode && (req.GetLink() == "" || req.GetLink() == seg.Name) {
			links[seg.Name] = true
		}
	}
	if req.GetLink() != "" && !slices.ContainsFunc(lab.AllSegments(), func(g labs.Segment) bool { return g.Name == req.GetLink() }) {
		return toStatus(invalidField("link", "lab %s has no link %q", lab.ID, req.GetLink()))
	}
	if req.GetNode() != "" && !sb.HasNode(req.GetNode()) {
		return toStatus(invalidField("node", "lab %s has no node %q", lab.ID, req.GetNode()))
	}
	var since time.Time
	if d := req.GetSince(); d != nil {
		if d.AsDuration() < 0 {
			return toStatus(invalidField("since", "must not be negative"))
		}
		if d.AsDuration() > 0 {
			since = time.Now().Add(-d.AsDuration())
		}
	}
	var live <-chan sandbox.Frame
	if req.GetFollow() {
		ch, cancel := sb.SubscribeFrames(1024)
		defer cancel()
		live = ch
	}
	base := sb.CaptureStats().SubscriberDrops + sb.CaptureStats().KernelDrops
	out := &chunkSender{stream: stream, dropped: func() int64 {
		st := sb.CaptureStats()
		return int64(st.SubscriberDrops + st.KernelDrops - base)
	}}
	w := sandbox.NewPcapngWriter(out)
	if err := w.WriteHeader(); err != nil {
		return toStatus(fmt.Errorf("capture %s: %w", sb.ID, err))
	}
	var last time.Time
	for _, f := range sb.RingFrames(since) {
		if !links[f.Link] {
			continue
		}
		if err := w.WriteFrame(f); err != nil {
			return toStatus(fmt.Errorf("capture %s: %w", sb.ID, err))
		}
		last = f.Time
	}
	if err := out.flush(); err != nil {
		return err
	}
	if live == nil {
		return nil
	}
	tick := time.NewTicker(100 * time.Millisecond)
	defer tick.Stop()
	for {
		select {
		case <-ctx.Done():
			return nil
		case f, ok := <-live:
			if !ok {
				out.flush()
				return toStatus(fmt.Errorf("capture of %s ended: the sandbox is gone: %w", sb.ID, sandbox.ErrGone))
			}
			if !links[f.Link] || !f.Time.After(last) {
				continue // filtered, or already sent from the ring
			}
			if err := w.WriteFrame(f); err != nil {
				return toStatus(fmt.Errorf("capture %s: %w", sb.ID, err))
			}
		case <-tick.C:
			// Live frames go out within 100 ms even when they trickle.
			if err := out.flush(); err != nil {
				return err
			}
		}
	}
}
