package api

import (
	"context"
	"encoding/json"
	"fmt"
	"sync"
	"sync/atomic"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/types/known/timestamppb"

	"nslab/grader"
	labsv1 "nslab/proto/labs/v1"
	"nslab/server/store"
)

// progressBuffer is how many grades a WatchProgress stream may have
// waiting to be sent. One that falls further behind skips to a snapshot.
const progressBuffer = 64

// Progress carries stored grades to the WatchProgress streams of their
// learner's workshop.
//
// Publishing never waits for a subscriber: each has a buffer of
// progressBuffer grades, and when it is full the grade is dropped and the
// subscriber is marked to resync — it throws away what it still holds and
// sends its client a fresh snapshot from the store. A slow or stuck
// client therefore costs Grade nothing and loses no grade, only the
// individual updates it was too slow to take.
type Progress struct {
	store *store.Store

	mu   sync.Mutex
	subs map[string]map[*progressSub]struct{} // by workshop id
	// n counts subscribers, so that Grade does no lookup when nobody
	// watches.
	n atomic.Int64
}

// progressSub is one WatchProgress stream's mailbox.
type progressSub struct {
	updates chan learnerGrade
	resync  chan struct{} // capacity 1: something was dropped
}

// learnerGrade is a stored grade and the learner (roster name) it is of.
type learnerGrade struct {
	learner string
	grade   store.Grade
}

// NewProgress returns a Progress reading learners' sandboxes from st.
func NewProgress(st *store.Store) *Progress {
	return &Progress{store: st, subs: map[string]map[*progressSub]struct{}{}}
}

// subscribe starts delivering workshop ws's grades; call the returned
// function to stop.
func (p *Progress) subscribe(ws string) (*progressSub, func()) {
	sub := &progressSub{updates: make(chan learnerGrade, progressBuffer), resync: make(chan struct{}, 1)}
	p.mu.Lock()
	if p.subs[ws] == nil {
		p.subs[ws] = map[*progressSub]struct{}{}
	}
	p.subs[ws][sub] = struct{}{}
	p.n.Add(1)
	p.mu.Unlock()
	return sub, func() {
		p.mu.Lock()
		delete(p.subs[ws], sub)
		if len(p.subs[ws]) == 0 {
			delete(p.subs, ws)
		}
		p.n.Add(-1)
		p.mu.Unlock()
	}
}

// publish tells the watchers of g's workshop that g was stored. It does
// not block on them (see Progress). A nil Progress publishes nothing.
func (p *Progress) publish(ctx context.Context, g *store.Grade) {
	if p == nil || p.n.Load() == 0 {
		return
	}
	// The learner is the owner of the graded sandbox, recorded with the
	// grade; a grade written without one is looked up.
	owner, err := g.Owner, error(nil)
	if owner == "" {
		owner, err = p.store.SandboxOwner(context.WithoutCancel(ctx), g.Sandbox)
	}
	if err != nil {
		// The grade cannot be routed; rather than let a watcher miss it,
		// every watcher reloads.
		p.mu.Lock()
		for _, subs := range p.subs {
			for sub := range subs {
				sub.markResync()
			}
		}
		p.mu.Unlock()
		return
	}
	ws, name, ok := store.ParseLearnerSubject(owner)
	if !ok {
		return // not a workshop learner's sandbox
	}
	ev := learnerGrade{learner: name, grade: *g}
	p.mu.Lock()
	defer p.mu.Unlock()
	for sub := range p.subs[ws] {
		select {
		case sub.updates <- ev:
		default:
			sub.markResync()
		}
	}
}

func (s *progressSub) markResync() {
	select {
	case s.resync <- struct{}{}:
	default: // already marked
	}
}

// drain empties the buffer, before a snapshot makes its contents moot.
func (s *progressSub) drain() {
	for {
		select {
		case <-s.updates:
		default:
			return
		}
	}
}

// exerciseGrade converts a stored grade, with the checks it failed.
func exerciseGrade(g *store.Grade) (*labsv1.ExerciseGrade, error) {
	out := &labsv1.ExerciseGrade{
		Exercise: g.Exercise, Graded: true, Score: int32(g.Score), MaxScore: int32(g.Max), Passed: g.Passed,
		GradeTime: timestamppb.New(g.Time), Grade: fmt.Sprintf("sandboxes/%s/grades/%d", g.Sandbox, g.ID),
	}
	var rep grader.Report
	if err := json.Unmarshal(g.Report, &rep); err != nil {
		return nil, fmt.Errorf("decode grade %d: %w", g.ID, err)
	}
	for _, r := range rep.Results {
		if !r.Passed {
			out.FailedChecks = append(out.FailedChecks, &labsv1.FailedCheck{Check: r.CheckID, Description: r.Description, Message: r.Message})
		}
	}
	return out, nil
}

// WatchProgress streams a workshop's grades: a snapshot, then updates.
func (w *WorkshopServer) WatchProgress(req *labsv1.WatchProgressRequest, stream labsv1.WorkshopService_WatchProgressServer) error {
	ctx := stream.Context()
	ws, err := w.workshop(ctx, "name", req.GetName())
	if err != nil {
		return toStatus(err)
	}
	// Subscribe before the snapshot is read, so that no grade falls
	// between the two; sent drops the updates the snapshot already had.
	sub, stop := w.progress.subscribe(ws.ID)
	defer stop()
	type key struct{ learner, exercise string }
	var sent map[key]int64
	snapshot := func() error {
		sub.drain()
		learners, err := w.st.WorkshopLearners(ctx, ws.ID)
		if err != nil {
			return err
		}
		grades, err := w.st.LatestGrades(ctx, ws.ID)
		if err != nil {
			return err
		}
		byLearner := map[string]*labsv1.LearnerProgress{}
		msg := &labsv1.WatchProgressResponse{Kind: labsv1.WatchProgressResponse_KIND_SNAPSHOT}
		for _, l := range learners {
			lp := &labsv1.LearnerProgress{Learner: l.Name}
			byLearner[l.Name] = lp
			msg.Learners = append(msg.Learners, lp)
		}
		sent = map[key]int64{}
		for _, g := range grades {
			eg, err := exerciseGrade(&g.Grade)
			if err != nil {
				return err
			}
			if lp := byLearner[g.Learner]; lp != nil {
				lp.Exercises = append(lp.Exercises, eg)
				sent[key{g.Learner, g.Exercise}] = g.ID
			}
		}
		return stream.Send(msg)
	}
	if err := snapshot(); err != nil {
		return toStatus(fmt.Errorf("watch progress of %s: %w", ws.ID, err))
	}
	for {
		select {
		case <-ctx.Done():
			return toStatus(ctx.Err())
		case <-w.closing:
			return status.Errorf(codes.Unavailable, "watch progress of %s: labd is shutting down", ws.ID)
		case <-sub.resync:
			if err := snapshot(); err != nil {
				return toStatus(fmt.Errorf("watch progress of %s: %w", ws.ID, err))
			}
		case ev := <-sub.updates:
			k := key{ev.learner, ev.grade.Exercise}
			if sent[k] >= ev.grade.ID {
				continue // the snapshot had it, or a newer one
			}
			eg, err := exerciseGrade(&ev.grade)
			if err != nil {
				return toStatus(err)
			}
			sent[k] = ev.grade.ID
			if err := stream.Send(&labsv1.WatchProgressResponse{
				Kind:     labsv1.WatchProgressResponse_KIND_UPDATE,
				Learners: []*labsv1.LearnerProgress{{Learner: ev.learner, Exercises: []*labsv1.ExerciseGrade{eg}}},
			}); err != nil {
				return err
			}
		}
	}
}
