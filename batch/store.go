package batch

import (
	"bufio"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"sort"
	"sync"
)

// File is a file object as OpenAI returns it, plus its owner.
type File struct {
	ID        string `json:"id"`
	Object    string `json:"object"`
	Bytes     int    `json:"bytes"`
	CreatedAt int64  `json:"created_at"`
	Filename  string `json:"filename"`
	Purpose   string `json:"purpose"`
	Status    string `json:"status"`
	// Tenant owns the file; only it sees the file.
	Tenant string `json:"tenant,omitempty"`
}

// ErrNotFound is an unknown id, or one another tenant owns.
var ErrNotFound = errors.New("not found")

// Store keeps files, batches and per-line results under one directory:
// files/ID.json and files/ID.data, batches/ID.json (rewritten whole by a
// rename) and batches/ID.results (one JSON line appended per finished
// request). Safe for concurrent use.
type Store struct {
	dir     string
	mu      sync.Mutex
	files   map[string]*File
	batches map[string]*Batch
}

// OpenStore opens (creating) the store in dir and loads what it holds.
func OpenStore(dir string) (*Store, error) {
	s := &Store{dir: dir, files: map[string]*File{}, batches: map[string]*Batch{}}
	for _, d := range []string{"files", "batches"} {
		if err := os.MkdirAll(filepath.Join(dir, d), 0o700); err != nil {
			return nil, fmt.Errorf("cannot create the batch store: %w", err)
		}
	}
	if err := s.load("files", func(data []byte) error {
		var f File
		err := json.Unmarshal(data, &f)
		s.files[f.ID] = &f
		return err
	}); err != nil {
		return nil, err
	}
	err := s.load("batches", func(data []byte) error {
		var b storedBatch
		err := json.Unmarshal(data, &b)
		b.Batch.Tenant = b.Tenant
		s.batches[b.ID] = &b.Batch
		return err
	})
	return s, err
}

// storedBatch is a batch on disk: the object and its owner.
type storedBatch struct {
	Batch
	Tenant string `json:"tenant"`
}

func (s *Store) load(sub string, add func([]byte) error) error {
	paths, _ := filepath.Glob(filepath.Join(s.dir, sub, "*.json"))
	for _, p := range paths {
		data, err := os.ReadFile(p)
		if err == nil {
			err = add(data)
		}
		if err != nil {
			return fmt.Errorf("cannot load %s: %w", p, err)
		}
	}
	return nil
}

// newID returns prefix and 24 random hex digits.
func newID(prefix string) string {
	var b [12]byte
	_, _ = rand.Read(b[:])
	return prefix + hex.EncodeToString(b[:])
}

// AddFile stores content as a new file of f's tenant and returns it.
func (s *Store) AddFile(f File, content []byte) (*File, error) {
	f.ID, f.Object, f.Bytes, f.Status = newID("file-"), "file", len(content), "processed"
	if err := writeAtomic(s.path("files", f.ID, ".data"), content); err != nil {
		return nil, err
	}
	if err := s.saveJSON(s.path("files", f.ID, ".json"), f); err != nil {
		return nil, err
	}
	s.mu.Lock()
	s.files[f.ID] = &f
	s.mu.Unlock()
	return &f, nil
}

// File returns tenant's file id.
func (s *Store) File(tenant, id string) (*File, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	f, ok := s.files[id]
	if !ok || f.Tenant != tenant {
		return nil, ErrNotFound
	}
	c := *f
	return &c, nil
}

// Content returns the bytes of tenant's file id.
func (s *Store) Content(tenant, id string) ([]byte, error) {
	if _, err := s.File(tenant, id); err != nil {
		return nil, err
	}
	return os.ReadFile(s.path("files", id, ".data"))
}

// DeleteFile removes tenant's file id.
func (s *Store) DeleteFile(tenant, id string) error {
	if _, err := s.File(tenant, id); err != nil {
		return err
	}
	s.mu.Lock()
	delete(s.files, id)
	s.mu.Unlock()
	_ = os.Remove(s.path("files", id, ".data"))
	return os.Remove(s.path("files", id, ".json"))
}

// Files returns tenant's files, newest first.
func (s *Store) Files(tenant string) []File {
	s.mu.Lock()
	defer s.mu.Unlock()
	var out []File
	for _, f := range s.files {
		if f.Tenant == tenant {
			out = append(out, *f)
		}
	}
	sort.Slice(out, func(i, j int) bool {
		if out[i].CreatedAt != out[j].CreatedAt {
			return out[i].CreatedAt > out[j].CreatedAt
		}
		return out[i].ID > out[j].ID
	})
	return out
}

// SaveBatch writes b (new or changed) to disk, then to the index.
func (s *Store) SaveBatch(b *Batch) error {
	if err := s.saveJSON(s.path("batches", b.ID, ".json"), storedBatch{Batch: *b, Tenant: b.Tenant}); err != nil {
		return err
	}
	c := *b
	s.mu.Lock()
	s.batches[b.ID] = &c
	s.mu.Unlock()
	return nil
}

// Batch returns a copy of tenant's batch id ("" tenant: any owner).
func (s *Store) Batch(tenant, id string) (*Batch, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	b, ok := s.batches[id]
	if !ok || (tenant != "" && b.Tenant != tenant) {
		return nil, ErrNotFound
	}
	c := *b
	return &c, nil
}

// Batches returns tenant's batches ("" tenant: all), newest first.
func (s *Store) Batches(tenant string) []Batch {
	s.mu.Lock()
	defer s.mu.Unlock()
	var out []Batch
	for _, b := range s.batches {
		if tenant == "" || b.Tenant == tenant {
			out = append(out, *b)
		}
	}
	sort.Slice(out, func(i, j int) bool {
		if out[i].CreatedAt != out[j].CreatedAt {
			return out[i].CreatedAt > out[j].CreatedAt
		}
		return out[i].ID > out[j].ID
	})
	return out
}

// Result is one finished request of a batch: its output or error file line.
type Result struct {
	CustomID string          `json:"custom_id"`
	OK       bool            `json:"ok"`
	Line     json.RawMessage `json:"line"`
}

// AppendResult records r for batch id; once it returns, a restart does
// not run r's request again.
func (s *Store) AppendResult(id string, r Result) error {
	data, err := json.Marshal(r)
	if err != nil {
		return fmt.Errorf("cannot encode a batch result: %w", err)
	}
	f, err := os.OpenFile(s.path("batches", id, ".results"), os.O_APPEND|os.O_CREATE|os.O_WRONLY, 0o600)
	if err != nil {
		return fmt.Errorf("cannot record a batch result: %w", err)
	}
	_, err = f.Write(append(data, '\n'))
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		return fmt.Errorf("cannot record a batch result: %w", err)
	}
	return nil
}

// Results returns batch id's recorded results by custom_id; a line torn
// by a crash is skipped (its request runs again).
func (s *Store) Results(id string) (map[string]Result, error) {
	out := map[string]Result{}
	f, err := os.Open(s.path("batches", id, ".results"))
	if errors.Is(err, os.ErrNotExist) {
		return out, nil
	}
	if err != nil {
		return nil, fmt.Errorf("cannot read batch results: %w", err)
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	sc.Buffer(make([]byte, 64<<10), maxResponseBytes+4096)
	for sc.Scan() {
		var r Result
		if json.Unmarshal(sc.Bytes(), &r) == nil && r.CustomID != "" {
			out[r.CustomID] = r
		}
	}
	return out, sc.Err()
}

func (s *Store) path(sub, id, ext string) string { return filepath.Join(s.dir, sub, id+ext) }

func (s *Store) saveJSON(path string, v any) error {
	data, err := json.Marshal(v)
	if err != nil {
		return fmt.Errorf("cannot encode %s: %w", filepath.Base(path), err)
	}
	return writeAtomic(path, data)
}

// writeAtomic writes data to path through a temporary file and a rename.
func writeAtomic(path string, data []byte) error {
	tmp := path + ".tmp"
	if err := os.WriteFile(tmp, data, 0o600); err != nil {
		return fmt.Errorf("cannot write the batch store: %w", err)
	}
	if err := os.Rename(tmp, path); err != nil {
		return fmt.Errorf("cannot write the batch store: %w", err)
	}
	return nil
}
