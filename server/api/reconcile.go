package api

import (
	"context"
	"fmt"

	"nslab/sandbox"
	"nslab/server/store"
)

// Reconcile makes the host agree with the store after a restart or a
// crash: READY sandboxes whose node inits are still the same processes
// are re-adopted; every other sandbox of this instance is torn down
// (CREATING and DELETING rows are finished off, lost READY ones are
// marked FAILED), and every kernel object with a sandbox id but no row is
// removed.
func (s *SandboxServer) Reconcile(ctx context.Context) error {
	rows, err := s.cfg.Store.AllSandboxes(ctx)
	if err != nil {
		return fmt.Errorf("reconcile: %w", err)
	}
	known := map[string]bool{}
	for _, row := range rows {
		known[row.ID] = true
		switch row.State {
		case store.StateReady:
			if err := s.adopt(ctx, row); err != nil {
				s.log.Warn("sandbox lost", "sandbox", row.ID, "err", err)
				if derr := s.cfg.Manager.Destroy(ctx, row.ID); derr != nil {
					return fmt.Errorf("reconcile %s: %w", row.ID, derr)
				}
				s.cfg.Store.SetState(ctx, row.ID, store.StateFailed, "lost while labd was down: "+err.Error())
				s.cfg.Store.RecordEvent(ctx, row.ID, "lost", err.Error())
			}
		case store.StateCreating:
			if err := s.cfg.Manager.Destroy(ctx, row.ID); err != nil {
				return fmt.Errorf("reconcile %s: %w", row.ID, err)
			}
			s.cfg.Store.RecordEvent(ctx, row.ID, "create-failed", "labd stopped while it was being created")
			if err := s.cfg.Store.DeleteSandbox(ctx, row.ID); err != nil {
				return fmt.Errorf("reconcile %s: %w", row.ID, err)
			}
			s.log.Info("removed half-built sandbox", "sandbox", row.ID)
		case store.StateDeleting:
			if err := s.cfg.Manager.Destroy(ctx, row.ID); err != nil {
				return fmt.Errorf("reconcile %s: %w", row.ID, err)
			}
			if err := s.cfg.Store.DeleteSandbox(ctx, row.ID); err != nil {
				return fmt.Errorf("reconcile %s: %w", row.ID, err)
			}
		case store.StateFailed:
			// Its kernel objects were removed when it failed; make sure.
			if err := s.cfg.Manager.Destroy(ctx, row.ID); err != nil {
				return fmt.Errorf("reconcile %s: %w", row.ID, err)
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

// Close releases handles; sandboxes keep running for the next start.
func (s *SandboxServer) Close() {
	s.mu.Lock()
	defer s.mu.Unlock()
	for id, sb := range s.live {
		sb.Close()
		delete(s.live, id)
	}
}
