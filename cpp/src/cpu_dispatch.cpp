#include "anunzi/cpu_dispatch.hpp"

#include <atomic>
#include <cstdlib>

namespace anunzi {
namespace {

bool cpu_has(Isa isa) {
  switch (isa) {
    case Isa::kPortable:
      return true;
#if defined(__x86_64__) && (defined(__GNUC__) || defined(__clang__))
    case Isa::kSse2:
      return true;  // part of x86-64 itself
    case Isa::kAvx2:
      __builtin_cpu_init();
      return __builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma");
    case Isa::kAvx512:
      __builtin_cpu_init();
      return __builtin_cpu_supports("avx512f") && __builtin_cpu_supports("avx512bw") &&
             __builtin_cpu_supports("avx512dq") && __builtin_cpu_supports("avx512vl");
#endif
    default:
      return false;
  }
}

Isa initial_isa() {
  const Isa best = best_supported_isa();
  if (const char* forced = std::getenv("ANUNZI_FAST_ISA")) {
    // An unknown or unsupported name falls back to the best level rather than failing the
    // import; the Python layer reports what is active.
    if (auto isa = isa_from_name(forced); isa && cpu_has(*isa)) return *isa;
  }
  return best;
}

std::atomic<int>& active_slot() {
  static std::atomic<int> slot{static_cast<int>(initial_isa())};
  return slot;
}

}  // namespace

Isa best_supported_isa() {
  for (Isa isa : {Isa::kAvx512, Isa::kAvx2, Isa::kSse2}) {
    if (cpu_has(isa)) return isa;
  }
  return Isa::kPortable;
}

bool isa_supported(Isa isa) { return cpu_has(isa); }

Isa active_isa() { return static_cast<Isa>(active_slot().load(std::memory_order_relaxed)); }

bool set_active_isa(Isa isa) {
  if (!cpu_has(isa)) return false;
  active_slot().store(static_cast<int>(isa), std::memory_order_relaxed);
  return true;
}

const char* isa_name(Isa isa) {
  switch (isa) {
    case Isa::kPortable:
      return "portable";
    case Isa::kSse2:
      return "sse2";
    case Isa::kAvx2:
      return "avx2";
    case Isa::kAvx512:
      return "avx512";
  }
  return "unknown";
}

std::optional<Isa> isa_from_name(const std::string& name) {
  for (Isa isa : {Isa::kPortable, Isa::kSse2, Isa::kAvx2, Isa::kAvx512}) {
    if (name == isa_name(isa)) return isa;
  }
  return std::nullopt;
}

}  // namespace anunzi
