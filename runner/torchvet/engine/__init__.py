"""Parent-side process management, without torch: the jobs handed to workers, the
executor that forks and watches them, and the messages they send back."""
