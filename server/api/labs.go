package api

import (
	"context"
	"strconv"
	"strings"

	"nslab/labs"
	labsv1 "nslab/proto/labs/v1"
)

// LabServer serves LabService from a catalog.
type LabServer struct {
	labsv1.UnimplementedLabServiceServer
	catalog *labs.Catalog
}

// NewLabServer returns a LabService over catalog.
func NewLabServer(c *labs.Catalog) *LabServer { return &LabServer{catalog: c} }

const (
	defaultPageSize = 100
	maxPageSize     = 1000
)

func pageSize(n int32) (int, error) {
	switch {
	case n < 0:
		return 0, invalidField("page_size", "must not be negative, got %d", n)
	case n == 0:
		return defaultPageSize, nil
	case n > maxPageSize:
		return maxPageSize, nil
	}
	return int(n), nil
}

// labID accepts "labs/{lab}" or a bare id.
func labID(field, name string) (string, error) {
	id := strings.TrimPrefix(name, "labs/")
	if id == "" {
		return "", invalidField(field, "required: a lab id or labs/{lab}")
	}
	if strings.Contains(id, "/") || len(id) > 40 || strings.IndexFunc(id, func(r rune) bool {
		return !(r >= 'a' && r <= 'z' || r >= '0' && r <= '9' || r == '-')
	}) >= 0 {
		return "", invalidField(field, "%q is not a lab name (labs/{lab})", name)
	}
	return id, nil
}

// ListLabs returns the catalog in id order. The page token is the offset.
func (s *LabServer) ListLabs(ctx context.Context, req *labsv1.ListLabsRequest) (*labsv1.ListLabsResponse, error) {
	size, err := pageSize(req.GetPageSize())
	if err != nil {
		return nil, toStatus(err)
	}
	all := s.catalog.List()
	off := 0
	if t := req.GetPageToken(); t != "" {
		off, err = strconv.Atoi(t)
		if err != nil || off < 0 || off > len(all) {
			return nil, toStatus(invalidField("page_token", "not a token this server issued"))
		}
	}
	end := min(off+size, len(all))
	resp := &labsv1.ListLabsResponse{}
	for _, l := range all[off:end] {
		resp.Labs = append(resp.Labs, labToProto(l))
	}
	if end < len(all) {
		resp.NextPageToken = strconv.Itoa(end)
	}
	return resp, nil
}

// GetLab returns one lab.
func (s *LabServer) GetLab(ctx context.Context, req *labsv1.GetLabRequest) (*labsv1.GetLabResponse, error) {
	id, err := labID("name", req.GetName())
	if err != nil {
		return nil, toStatus(err)
	}
	l, err := s.catalog.Get(id)
	if err != nil {
		return nil, toStatus(err)
	}
	return &labsv1.GetLabResponse{Lab: labToProto(l)}, nil
}

func labToProto(l *labs.Lab) *labsv1.Lab {
	out := &labsv1.Lab{
		Name: "labs/" + l.ID, Id: l.ID, Title: l.Title, Summary: l.Summary, Level: l.Level,
		Topics: l.Topics, Minutes: int32(l.Minutes), Requires: l.Requires, Source: l.Source, Learned: l.Learned,
	}
	for _, n := range l.Nodes {
		ln := &labsv1.LabNode{Name: n.Name}
		for _, i := range n.Interfaces {
			ln.Interfaces = append(ln.Interfaces, &labsv1.LabInterface{Name: i.Name, Addresses: i.Addresses, Mtu: int32(i.MTU)})
		}
		for _, s := range n.Services {
			ln.Services = append(ln.Services, s.Name)
		}
		out.Nodes = append(out.Nodes, ln)
	}
	for _, s := range l.AllSegments() {
		out.Links = append(out.Links, &labsv1.LabLink{Name: s.Name, Endpoints: s.Endpoints})
	}
	for _, e := range l.Exercises {
		pe := &labsv1.Exercise{Id: e.ID, Title: e.Title, Instructions: e.Instructions, Hints: e.Hints}
		for _, c := range e.Checks {
			pc := &labsv1.ExerciseCheck{Id: c.ID, Kind: c.Kind(), Points: int32(max(c.Points, 1)), Hidden: c.Hidden}
			if !c.Hidden {
				pc.Description = c.Description
			}
			pe.Checks = append(pe.Checks, pc)
		}
		out.Exercises = append(out.Exercises, pe)
	}
	return out
}
