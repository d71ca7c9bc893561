package labs

import (
	"embed"
	"errors"
	"fmt"
	"io/fs"
	"maps"
	"path"
	"slices"
	"sync"
)

// ErrNotFound is returned (wrapped) by Catalog.Get for an unknown id.
var ErrNotFound = errors.New("lab not found")

//go:embed */lab.yaml
var embedded embed.FS

// Catalog is the set of labs a server offers: the embedded ones, then
// labs from extra directories, which override embedded labs of the same
// id. It is safe for concurrent use. The labs it returns are shared:
// treat them as read-only.
type Catalog struct {
	mu   sync.RWMutex
	labs map[string]*Lab
}

// NewCatalog loads the embedded labs, then the labs in each of
// extraDirs in order (see LoadDir); a later lab replaces an earlier one
// with the same id. Any invalid lab fails the whole catalog, so a bad
// file is noticed at startup rather than when a learner picks it.
func NewCatalog(extraDirs ...string) (*Catalog, error) {
	c := &Catalog{labs: make(map[string]*Lab)}
	emb, err := loadEmbedded()
	if err != nil {
		return nil, err
	}
	for _, l := range emb {
		c.labs[l.ID] = l
	}
	for _, dir := range extraDirs {
		ls, err := LoadDir(dir)
		if err != nil {
			return nil, err
		}
		for _, l := range ls {
			c.labs[l.ID] = l
		}
	}
	return c, nil
}

func loadEmbedded() ([]*Lab, error) {
	files, err := fs.Glob(embedded, "*/lab.yaml")
	if err != nil {
		return nil, fmt.Errorf("list embedded labs: %w", err)
	}
	var (
		labs []*Lab
		errs []error
	)
	for _, f := range files {
		data, err := embedded.ReadFile(f)
		if err != nil {
			errs = append(errs, fmt.Errorf("read embedded lab %s: %w", f, err))
			continue
		}
		l, err := parse(data, "embedded:"+f, path.Dir(f))
		if err != nil {
			errs = append(errs, err)
			continue
		}
		labs = append(labs, l)
	}
	if len(errs) > 0 {
		return nil, errors.Join(errs...)
	}
	return labs, nil
}

// List returns every lab, sorted by id.
func (c *Catalog) List() []*Lab {
	c.mu.RLock()
	labs := slices.Collect(maps.Values(c.labs))
	c.mu.RUnlock()
	sortByID(labs)
	return labs
}

// Get returns the lab with the given id, or an error wrapping
// ErrNotFound.
func (c *Catalog) Get(id string) (*Lab, error) {
	c.mu.RLock()
	l, ok := c.labs[id]
	c.mu.RUnlock()
	if !ok {
		return nil, fmt.Errorf("get lab %q: %w", id, ErrNotFound)
	}
	return l, nil
}

// Add adds l, replacing any lab with the same id. It does not validate
// l; it is meant for tests that build labs in code.
func (c *Catalog) Add(l *Lab) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.labs == nil {
		c.labs = make(map[string]*Lab)
	}
	c.labs[l.ID] = l
}
