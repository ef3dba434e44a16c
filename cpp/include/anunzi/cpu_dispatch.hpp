#pragma once
// Runtime choice of the instruction set for the hot loops. Wheels are built for the baseline
// of their platform; faster variants are compiled for their ISA alone (per-function target
// attributes, or a translation unit of their own) and picked here, once, from what the CPU
// reports. Tests force each level to cover every path.
#include <optional>
#include <string>

namespace anunzi {

enum class Isa : int {
  kPortable = 0,  // plain C++, any CPU
  kSse2 = 1,      // x86-64 baseline
  kAvx2 = 2,      // AVX2 + FMA (Haswell, Zen and later)
  kAvx512 = 3,    // AVX-512 F/BW/DQ/VL (Skylake-X, Zen 4 and later)
};

// Highest level this CPU (and this build) supports.
Isa best_supported_isa();

// Whether this CPU and build can run `isa`.
bool isa_supported(Isa isa);

// The level the dispatching functions use now: chosen at first use by choose_isa() from the
// ANUNZI_FAST_ISA environment variable, then changed only by set_active_isa().
Isa active_isa();

// Forces a level (for tests and benchmarks). Returns false, changing nothing, when the CPU
// cannot run it.
bool set_active_isa(Isa isa);

// How the value of ANUNZI_FAST_ISA (`request`; null or empty when it is not set) picks a level
// on a CPU that runs the levels `supported` accepts: the named level if it is known and
// supported; otherwise the best supported one, and `ignored` tells that a request was made
// and not honoured (the caller warns: a bad value never stops the program).
struct IsaChoice {
  Isa isa;
  bool ignored;
};
IsaChoice choose_isa(const char* request, bool (*supported)(Isa) = isa_supported);

// The ANUNZI_FAST_ISA value ignored when the active level was first chosen, or empty.
std::string ignored_isa_request();

const char* isa_name(Isa isa);
std::optional<Isa> isa_from_name(const std::string& name);

}  // namespace anunzi
