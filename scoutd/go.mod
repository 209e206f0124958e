module github.com/bounded-systems/claude-box/scoutd

go 1.25.0
