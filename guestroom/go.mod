module github.com/bounded-systems/claude-box/guestroom

go 1.25.0
