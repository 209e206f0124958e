package scout

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"strconv"

	"github.com/bounded-systems/claude-box/guestroom"
)

// IssueRequest names a GitHub issue.
type IssueRequest struct {
	// Repo is "owner/name".
	Repo string
	// Number is the issue number.
	Number int64
	// Comments asks for the comments too.
	Comments bool
	// Caveats are the caveats of the door the request came through.
	Caveats []guestroom.Caveat
}

// PullRequestRequest names a GitHub pull request.
type PullRequestRequest struct {
	// Repo is "owner/name".
	Repo string
	// Number is the PR number.
	Number int64
	// Comments asks for the (issue) comments too.
	Comments bool
	// Diff asks for the unified diff too.
	Diff bool
	// Caveats are the caveats of the door the request came through.
	Caveats []guestroom.Caveat
}

// Comment is one issue or PR comment.
type Comment struct {
	Author    string `json:"author"`
	Body      string `json:"body"`
	CreatedAt string `json:"created_at"`
}

// Issue is a GitHub issue, or the issue half of a pull request.
type Issue struct {
	Number    int64     `json:"number"`
	Title     string    `json:"title"`
	Body      string    `json:"body"`
	State     string    `json:"state"`
	Labels    []string  `json:"labels"`
	Author    string    `json:"author"`
	CreatedAt string    `json:"created_at"`
	UpdatedAt string    `json:"updated_at"`
	ClosedAt  string    `json:"closed_at,omitempty"`
	HTMLURL   string    `json:"html_url"`
	Comments  []Comment `json:"comments,omitempty"`
}

// PullRequest is a GitHub pull request.
type PullRequest struct {
	Issue
	Head    string `json:"head"`
	Base    string `json:"base"`
	HeadSHA string `json:"head_sha"`
	Merged  bool   `json:"merged"`
	Draft   bool   `json:"draft"`
	Diff    string `json:"diff,omitempty"`
}

// Issue reads one issue through the GitHub REST API.
func (s *Scout) Issue(ctx context.Context, req IssueRequest) (Issue, error) {
	ctx, cancel := context.WithTimeoutCause(ctx, s.limits.Timeout, errTotalTimeout)
	defer cancel()
	owner, name, err := s.checkGitHub(req.Repo, req.Number, req.Caveats)
	if err != nil {
		return Issue{}, Classify(ctx, err)
	}
	base := fmt.Sprintf("/repos/%s/%s/issues/%d", owner, name, req.Number)
	var raw ghIssue
	if err := s.getJSON(ctx, base, &raw); err != nil {
		return Issue{}, Classify(ctx, err)
	}
	is := raw.issue()
	if req.Comments {
		if is.Comments, err = s.comments(ctx, base+"/comments"); err != nil {
			return Issue{}, Classify(ctx, err)
		}
	}
	return is, nil
}

// PullRequest reads one pull request through the GitHub REST API.
func (s *Scout) PullRequest(ctx context.Context, req PullRequestRequest) (PullRequest, error) {
	ctx, cancel := context.WithTimeoutCause(ctx, s.limits.Timeout, errTotalTimeout)
	defer cancel()
	owner, name, err := s.checkGitHub(req.Repo, req.Number, req.Caveats)
	if err != nil {
		return PullRequest{}, Classify(ctx, err)
	}
	path := fmt.Sprintf("/repos/%s/%s/pulls/%d", owner, name, req.Number)
	var raw ghPull
	if err := s.getJSON(ctx, path, &raw); err != nil {
		return PullRequest{}, Classify(ctx, err)
	}
	pr := PullRequest{
		Issue:   raw.ghIssue.issue(),
		Head:    raw.Head.Label,
		Base:    raw.Base.Label,
		HeadSHA: raw.Head.SHA,
		Merged:  raw.Merged,
		Draft:   raw.Draft,
	}
	if req.Comments {
		c, err := s.comments(ctx, fmt.Sprintf("/repos/%s/%s/issues/%d/comments", owner, name, req.Number))
		if err != nil {
			return PullRequest{}, Classify(ctx, err)
		}
		pr.Comments = c
	}
	if req.Diff {
		b, err := s.get(ctx, path, "application/vnd.github.diff")
		if err != nil {
			return PullRequest{}, Classify(ctx, err)
		}
		pr.Diff = string(b)
	}
	return pr, nil
}

func (s *Scout) checkGitHub(repo string, number int64, caveats []guestroom.Caveat) (string, string, error) {
	owner, name, err := ParseRepo(repo)
	if err != nil {
		return "", "", err
	}
	if number <= 0 {
		return "", "", invalid("number %d: want a positive issue or PR number", number)
	}
	req := guestroom.Request{CaveatHost: s.api.Target.Host, caveatPort: strconv.Itoa(int(s.api.Target.Port)), CaveatRepo: owner + "/" + name}
	if err := guestroom.CheckCaveats(caveats, Verifiers(), req); err != nil {
		return "", "", err
	}
	return owner, name, nil
}

func (s *Scout) comments(ctx context.Context, path string) ([]Comment, error) {
	var out []Comment
	for page := 1; len(out) < s.limits.MaxComments; page++ {
		var raw []ghComment
		if err := s.getJSON(ctx, path+"?per_page=100&page="+strconv.Itoa(page), &raw); err != nil {
			return nil, err
		}
		for _, c := range raw {
			if len(out) == s.limits.MaxComments {
				break
			}
			out = append(out, Comment{Author: c.User.Login, Body: c.Body, CreatedAt: c.CreatedAt})
		}
		if len(raw) < 100 {
			break
		}
	}
	return out, nil
}

func (s *Scout) getJSON(ctx context.Context, path string, v any) error {
	b, err := s.get(ctx, path, "application/vnd.github+json")
	if err != nil {
		return err
	}
	if err := json.Unmarshal(b, v); err != nil {
		return &Error{Kind: KindUnavailable, Reason: ReasonUpstreamError, Err: fmt.Errorf("github answer to %s: %w", path, err)}
	}
	return nil
}

// get reads path on the GitHub API, under the body ceiling. Only this
// client's transport adds the token, and only on the first hop to the API.
func (s *Scout) get(ctx context.Context, path, accept string) ([]byte, error) {
	u := s.api.Scheme + "://" + s.api.Target.Authority(s.api.DefaultPort()) + s.apiPath + path
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, u, nil)
	if err != nil {
		return nil, invalid("github url: %v", err)
	}
	req.Header.Set("Accept", accept)
	req.Header.Set("X-GitHub-Api-Version", "2022-11-28")
	req.Header.Set("User-Agent", s.ua)
	resp, err := s.gh.Do(req)
	if err != nil {
		return nil, err
	}
	defer func() { _ = resp.Body.Close() }()
	if resp.ContentLength > s.limits.MaxBytes {
		return nil, tooLarge(ReasonTooLarge, s.limits.MaxBytes)
	}
	b, err := io.ReadAll(&capReader{r: resp.Body, max: s.limits.MaxBytes, reason: ReasonTooLarge})
	if err != nil {
		return nil, err
	}
	switch {
	case resp.StatusCode == http.StatusOK:
		return b, nil
	case resp.StatusCode == http.StatusNotFound:
		return nil, &Error{Kind: KindNotFound, Reason: ReasonNotFound, Err: errors.New("github: not found (or not visible to scoutd's token)")}
	default:
		return nil, &Error{Kind: KindUnavailable, Reason: ReasonUpstreamStatus, Err: fmt.Errorf("github answered %s", resp.Status)}
	}
}

type ghUser struct {
	Login string `json:"login"`
}

type ghIssue struct {
	Number int64  `json:"number"`
	Title  string `json:"title"`
	Body   string `json:"body"`
	State  string `json:"state"`
	User   ghUser `json:"user"`
	Labels []struct {
		Name string `json:"name"`
	} `json:"labels"`
	CreatedAt string `json:"created_at"`
	UpdatedAt string `json:"updated_at"`
	ClosedAt  string `json:"closed_at"`
	HTMLURL   string `json:"html_url"`
}

func (g ghIssue) issue() Issue {
	is := Issue{
		Number: g.Number, Title: g.Title, Body: g.Body, State: g.State, Author: g.User.Login,
		CreatedAt: g.CreatedAt, UpdatedAt: g.UpdatedAt, ClosedAt: g.ClosedAt, HTMLURL: g.HTMLURL,
	}
	for _, l := range g.Labels {
		is.Labels = append(is.Labels, l.Name)
	}
	return is
}

type ghPull struct {
	ghIssue
	Merged bool `json:"merged"`
	Draft  bool `json:"draft"`
	Head   struct {
		Label string `json:"label"`
		SHA   string `json:"sha"`
	} `json:"head"`
	Base struct {
		Label string `json:"label"`
	} `json:"base"`
}

type ghComment struct {
	User      ghUser `json:"user"`
	Body      string `json:"body"`
	CreatedAt string `json:"created_at"`
}
