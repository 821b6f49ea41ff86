package sensor

import (
	"crypto/subtle"
	"encoding/json"
	"fmt"
	"io"
	"mime"
	"net/http"
	"strings"
	"sync"

	"function/internal/emulator"
)

// V1StandIn answers Confluence Cloud's v1 page create,
// POST /wiki/rest/api/content, for an emulator that does not serve it: the
// Sensor's second trigger needs it. It keeps its own pages and enforces
// what decides the Sensor's outcome — Basic auth, a JSON body of type
// "page" with a title, a space key and a storage body, and Confluence's
// unique title per space (case-insensitive), answered with v1's 400 — and
// counts its calls. Every other request goes to Next (the emulator).
type V1StandIn struct {
	Next         http.Handler
	Email, Token string
	Spaces       []string // known space keys; default INCIDENTS

	mu     sync.Mutex
	calls  int
	nextID int
	titles map[string]string // space key + "\x00" + lower(title) → page id
}

// Calls is the number of v1 create calls served.
func (s *V1StandIn) Calls() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.calls
}

// Pages is the number of pages created.
func (s *V1StandIn) Pages() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return len(s.titles)
}

func (s *V1StandIn) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	if r.URL.Path != "/wiki/rest/api/content" || r.Method != http.MethodPost {
		s.Next.ServeHTTP(w, r)
		return
	}
	s.mu.Lock()
	s.calls++
	if s.titles == nil {
		s.titles, s.nextID = map[string]string{}, 900001
	}
	s.mu.Unlock()
	user, pass, ok := r.BasicAuth()
	if !ok || !strings.EqualFold(user, s.Email) || subtle.ConstantTimeCompare([]byte(pass), []byte(s.Token)) != 1 {
		v1Error(w, http.StatusUnauthorized, "Current user not permitted to use Confluence")
		return
	}
	if mt, _, _ := mime.ParseMediaType(r.Header.Get("Content-Type")); mt != "application/json" {
		v1Error(w, http.StatusUnsupportedMediaType, "Unsupported Media Type")
		return
	}
	var in struct {
		Type  string `json:"type"`
		Title string `json:"title"`
		Space *struct {
			Key string `json:"key"`
		} `json:"space"`
		Body *struct {
			Storage *struct {
				Value          string `json:"value"`
				Representation string `json:"representation"`
			} `json:"storage"`
		} `json:"body"`
	}
	b, _ := io.ReadAll(io.LimitReader(r.Body, 5<<20))
	if err := json.Unmarshal(b, &in); err != nil {
		v1Error(w, http.StatusBadRequest, "com.atlassian.confluence.api.service.exceptions.BadRequestException: Could not parse the request body")
		return
	}
	switch {
	case in.Space == nil || in.Space.Key == "":
		v1Error(w, http.StatusBadRequest, "com.atlassian.confluence.api.service.exceptions.BadRequestException: Could not create content with type page: space is required")
		return
	case in.Type != "page" && in.Type != "blogpost":
		v1Error(w, http.StatusBadRequest, fmt.Sprintf("com.atlassian.confluence.api.service.exceptions.BadRequestException: Unsupported content type: %q", in.Type))
		return
	case strings.TrimSpace(in.Title) == "":
		v1Error(w, http.StatusBadRequest, "com.atlassian.confluence.api.service.exceptions.BadRequestException: Content title is required")
		return
	case in.Body == nil || in.Body.Storage == nil || in.Body.Storage.Representation != "storage":
		v1Error(w, http.StatusBadRequest, "com.atlassian.confluence.api.service.exceptions.BadRequestException: A body with representation storage is required")
		return
	}
	spaces := s.Spaces
	if len(spaces) == 0 {
		spaces = []string{"INCIDENTS"}
	}
	known := false
	for _, k := range spaces {
		known = known || strings.EqualFold(k, in.Space.Key)
	}
	if !known {
		v1Error(w, http.StatusNotFound, "No space with key : "+in.Space.Key)
		return
	}
	key := strings.ToUpper(in.Space.Key) + "\x00" + strings.ToLower(in.Title)
	s.mu.Lock()
	if _, taken := s.titles[key]; taken {
		s.mu.Unlock()
		v1Error(w, http.StatusBadRequest, "A page with this title already exists: A page already exists with the same TITLE in this space")
		return
	}
	id := fmt.Sprint(s.nextID)
	s.nextID++
	s.titles[key] = id
	s.mu.Unlock()
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(http.StatusOK)
	_ = json.NewEncoder(w).Encode(map[string]any{
		"id": id, "type": in.Type, "status": "current", "title": in.Title,
		"space":   map[string]any{"key": strings.ToUpper(in.Space.Key)},
		"version": map[string]any{"number": 1},
		"_links":  map[string]any{"webui": "/spaces/" + strings.ToUpper(in.Space.Key) + "/pages/" + id},
	})
}

// v1Error writes Confluence v1's error body.
func v1Error(w http.ResponseWriter, status int, msg string) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(status)
	_ = json.NewEncoder(w).Encode(map[string]any{
		"statusCode": status,
		"data":       map[string]any{"authorized": status != http.StatusUnauthorized, "valid": false, "errors": []any{}, "successful": false},
		"message":    msg,
	})
}

func emailOf() string { return emulator.DefaultEmail }
func tokenOf() string { return emulator.DefaultAPIToken }
