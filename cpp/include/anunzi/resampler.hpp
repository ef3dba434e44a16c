#pragma once
// Placeholder until the streaming resampler lands (issue 3).
