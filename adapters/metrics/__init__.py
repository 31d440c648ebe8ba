"""Where the server's operating metrics go."""
