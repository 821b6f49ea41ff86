package emulator

import (
	"strconv"
	"strings"
)

// The emulator gives every project Jira Cloud's default team-managed
// workflow: three statuses, each reachable from every other one through a
// global transition named after its target status.

type statusID int

const (
	statusToDo statusID = iota
	statusInProgress
	statusDone
	numStatuses
)

type statusInfo struct {
	id           string
	name         string
	transitionID string
	catID        int
	catKey       string
	catName      string
	catColor     string
}

func (s statusID) info() statusInfo {
	switch s {
	case statusInProgress:
		return statusInfo{id: "3", name: "In Progress", transitionID: "21",
			catID: 4, catKey: "indeterminate", catName: "In Progress", catColor: "yellow"}
	case statusDone:
		return statusInfo{id: "10001", name: "Done", transitionID: "31",
			catID: 3, catKey: "done", catName: "Done", catColor: "green"}
	default:
		return statusInfo{id: "10000", name: "To Do", transitionID: "11",
			catID: 2, catKey: "new", catName: "To Do", catColor: "blue-gray"}
	}
}

// statusByTransition returns the target status of a transition id.
func statusByTransition(id string) (statusID, bool) {
	for s := statusToDo; s < numStatuses; s++ {
		if s.info().transitionID == id {
			return s, true
		}
	}
	return 0, false
}

// statusByName matches a status by name or id, case-insensitively, as JQL
// does.
func statusByName(v string) (statusID, bool) {
	for s := statusToDo; s < numStatuses; s++ {
		if strings.EqualFold(s.info().name, v) || s.info().id == v {
			return s, true
		}
	}
	return 0, false
}

// categoryMatches matches a statusCategory value by key, name or id.
func categoryMatches(s statusID, v string) bool {
	i := s.info()
	return strings.EqualFold(i.catKey, v) || strings.EqualFold(i.catName, v) || strconv.Itoa(i.catID) == v
}

// priority is one of Jira Cloud's default priorities.
type priority struct {
	id   string
	name string
}

func priorityByRef(id, name string) (*priority, bool) {
	for _, p := range []priority{{"1", "Highest"}, {"2", "High"}, {"3", "Medium"}, {"4", "Low"}, {"5", "Lowest"}} {
		if (id != "" && p.id == id) || (id == "" && strings.EqualFold(p.name, name)) {
			return &p, true
		}
	}
	return nil, false
}

// defaultPriority is what Jira assigns when the create call has none.
func defaultPriority() *priority {
	p, _ := priorityByRef("3", "")
	return p
}
