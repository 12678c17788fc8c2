"""One HealthImaging copy's life: intake, destination, pacing, start, status, force."""
