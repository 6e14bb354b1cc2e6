"""The equibench leaderboard: submission checks, the store of results files, and the renderer."""
