// Placeholder until the streaming resampler lands (issue 3).
int main() { return 0; }
