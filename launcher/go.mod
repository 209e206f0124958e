module github.com/bounded-systems/claude-box/launcher

go 1.25.0
