#include "anunzi/cpu_dispatch.hpp"

#include <atomic>
#include <cstdlib>
#include <string>

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

// The choice made at first use, from the environment as it was then.
struct InitialChoice {
  IsaChoice choice;
  std::string request;
};

const InitialChoice& initial_choice() {
  static const InitialChoice initial = [] {
    const char* request = std::getenv("ANUNZI_FAST_ISA");
    return InitialChoice{choose_isa(request), request != nullptr ? request : ""};
  }();
  return initial;
}

std::atomic<int>& active_slot() {
  static std::atomic<int> slot{static_cast<int>(initial_choice().choice.isa)};
  return slot;
}

Isa best_of(bool (*supported)(Isa)) {
  for (Isa isa : {Isa::kAvx512, Isa::kAvx2, Isa::kSse2}) {
    if (supported(isa)) return isa;
  }
  return Isa::kPortable;
}

}  // namespace

IsaChoice choose_isa(const char* request, bool (*supported)(Isa)) {
  const Isa best = best_of(supported);
  if (request == nullptr || request[0] == '\0') return {best, false};
  if (const auto isa = isa_from_name(request); isa && supported(*isa)) return {*isa, false};
  return {best, true};
}

std::string ignored_isa_request() {
  const InitialChoice& initial = initial_choice();
  return initial.choice.ignored ? initial.request : std::string();
}

Isa best_supported_isa() { return best_of(cpu_has); }

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
