// Placeholder until the streaming resampler lands (issue 3).
#include "anunzi/resampler.hpp"
