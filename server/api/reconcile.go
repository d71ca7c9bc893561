package api

import (
	"context"
	"fmt"
	"time"

	"nslab/sandbox"
	"nslab/server/store"
)

// Reconcile makes the host agree with the store after a restart or a
// crash: READY sandboxes whose node inits are still the same processes
// are re-adopted; every other sandbox of this instance is torn down:
// CREATING ones (labd died building them) and lost READY ones are kept as
// FAILED with their nodes released, until they expire or are deleted;
// DELETING ones are finished off. Every kernel object with a sandbox id
// but no row is removed.
func (s *SandboxServer) Reconcile(ctx context.Context) error {
	rows, err := s.cfg.Store.AllSandboxes(ctx)
	if err != nil {
		return fmt.Errorf("reconcile: %w", err)
	}
	known := map[string]bool{}
	// A FAILED row is kept for a TTL from now, unless it has an expiry.
	keep := time.Now().Add(s.cfg.TTL)
	fail := func(row *store.Sandbox, kind, reason string) error {
		if err := s.cfg.Manager.Destroy(ctx, row.ID); err != nil {
			return fmt.Errorf("reconcile %s: %w", row.ID, err)
		}
		if err := s.cfg.Store.FailSandbox(ctx, row.ID, reason, keep); err != nil {
			return fmt.Errorf("reconcile %s: %w", row.ID, err)
		}
		if kind != "" {
			s.cfg.Store.RecordEvent(ctx, row.ID, kind, reason)
			s.emitState(ctx, row.ID, reason)
		}
		return nil
	}
	for _, row := range rows {
		known[row.ID] = true
		switch row.State {
		case store.StateReady:
			if err := s.adopt(ctx, row); err != nil {
				s.log.Warn("sandbox lost", "sandbox", row.ID, "err", err)
				if err := fail(row, "lost", "lost while labd was down: "+err.Error()); err != nil {
					return err
				}
			}
		case store.StateCreating:
			if err := fail(row, "create-failed", buildCutShort); err != nil {
				return err
			}
			s.log.Info("half-built sandbox torn down, kept as FAILED", "sandbox", row.ID)
		case store.StateDeleting:
			if err := s.cfg.Manager.Destroy(ctx, row.ID); err != nil {
				return fmt.Errorf("reconcile %s: %w", row.ID, err)
			}
			if err := s.cfg.Store.DeleteSandbox(ctx, row.ID); err != nil {
				return fmt.Errorf("reconcile %s: %w", row.ID, err)
			}
			s.cfg.Store.RecordEvent(ctx, row.ID, "deleted", "finished after a restart")
			s.emit(EventDeleted, row, "deleted", nil)
		case store.StateFailed:
			// Its kernel objects were removed when it failed; make sure,
			// and release the nodes of a row from before FailSandbox.
			if err := fail(row, "", row.Failure); err != nil {
				return err
			}
		}
	}
	for _, id := range s.cfg.Manager.Scan() {
		if known[id] {
			continue
		}
		s.log.Info("removing orphaned sandbox", "sandbox", id)
		if err := s.cfg.Manager.Destroy(ctx, id); err != nil {
			return fmt.Errorf("reconcile orphan %s: %w", id, err)
		}
	}
	return nil
}

func (s *SandboxServer) adopt(ctx context.Context, row *store.Sandbox) error {
	lab, err := s.cfg.Catalog.Get(row.Lab)
	if err != nil {
		return err
	}
	var nodes []sandbox.NodeProc
	for _, n := range row.Nodes {
		nodes = append(nodes, sandbox.NodeProc{Name: n.Name, Pid: n.Pid, StartTime: n.StartTime})
	}
	sb, err := s.cfg.Manager.Adopt(ctx, lab, row.ID, nodes)
	if err != nil {
		return err
	}
	s.mu.Lock()
	s.live[row.ID] = sb
	s.mu.Unlock()
	s.log.Info("re-adopted sandbox", "sandbox", row.ID, "lab", row.Lab)
	return nil
}

// Drain ends every WatchSandboxes stream and refuses new ones. Call it
// when shutdown begins, so that a graceful stop does not wait on streams
// that never end by themselves.
func (s *SandboxServer) Drain() { s.events.close() }

// Close stops the server's work and releases its handles; sandboxes keep
// running for the next start. Creates and deletes are refused from now
// on; builds still running are cut short, their sandboxes torn down and
// kept as FAILED, and Close waits for them and for deletes in progress.
func (s *SandboxServer) Close() {
	s.Drain()
	s.mu.Lock()
	s.closing = true
	s.mu.Unlock()
	s.abort()
	s.inflight.Wait()
	s.mu.Lock()
	defer s.mu.Unlock()
	for id, sb := range s.live {
		sb.Close()
		delete(s.live, id)
	}
}
