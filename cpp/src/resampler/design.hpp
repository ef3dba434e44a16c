#pragma once
// Internal to the resampler: the polyphase coefficient table of a ratio and preset, designed
// from its prototype once and shared, immutable, by every stream that needs it (the design
// cache keeps recent ones for streams built later).
#include <cstddef>
#include <cstdint>
#include <memory>
#include <new>
#include <type_traits>
#include <vector>

#include "prototype.hpp"
#include "spec.hpp"

namespace anunzi::detail {

// One exact coefficient row per output phase while the table stays cache-friendly; beyond it,
// rows at 1/kInterpPhases steps and cubic (Lagrange) interpolation between four of them, whose
// error stays near -190 dB, below every preset's target.
constexpr std::uint64_t kMaxExactPhases = 4096;
constexpr std::size_t kMaxExactTableBytes = std::size_t{8} << 20;
constexpr std::uint64_t kInterpPhases = 256;
// Refuse designs beyond this (e.g. 192 kHz -> 1 Hz at VHQ) rather than exhaust memory.
constexpr double kMaxTableBytes = 256.0 * (1 << 20);

// 64-byte aligned storage, so the vector loads of aligned history blocks and of coefficient
// rows never straddle cache lines.
template <typename T>
struct AlignedAllocator {
  using value_type = T;
  AlignedAllocator() = default;
  template <typename U>
  explicit AlignedAllocator(const AlignedAllocator<U>&) noexcept {}
  T* allocate(std::size_t n) {
    return static_cast<T*>(::operator new(n * sizeof(T), std::align_val_t{64}));
  }
  void deallocate(T* p, std::size_t) noexcept { ::operator delete(p, std::align_val_t{64}); }
  bool operator==(const AlignedAllocator&) const noexcept { return true; }
  bool operator!=(const AlignedAllocator&) const noexcept { return false; }
};

template <typename T>
using AlignedVector = std::vector<T, AlignedAllocator<T>>;

// Taps are padded to, and history addressed in, blocks of one 512-bit vector.
template <typename S>
inline constexpr std::size_t kLanes = std::is_same<S, float>::value ? 16 : 8;

// A designed filter: coefficient rows, one per phase. Immutable once built, so streams with
// the same ratio and preset share one.
template <typename S>
struct FilterDesign {
  AlignedVector<S> table;
  std::size_t taps = 0, before = 0, after = 0, rows = 0;
  bool interpolated = false;
  PrototypeKind kind = PrototypeKind::kKaiser;
  // Zero taps at the start of every row (the SIMD padding, and more for rows whose support is
  // shorter): the consecutive kernel, which has no vector-width constraint, skips them.
  std::size_t leading_zeros = 0;
  // The two-parallel fast FIR's filters for integer up factors, one per phase: the row from
  // leading_zeros on, of even length 2 * half, split into even taps, odd taps and their sums:
  // fast_fir[(3 * r + {0, 1, 2}) * half + j] = g[2j], g[2j + 1], g[2j] + g[2j + 1].
  // Every product the fast FIR forms must lie in the window of an output it computes, or
  // chunked and one-shot results could differ in the last bits (terms that cancel only in
  // exact arithmetic would see input a stream has not received yet). So the taps are
  // extended at the front with fast_fir_front zeros to an even length (so no product reaches
  // past a window's end); windows start that many samples earlier.
  AlignedVector<S> fast_fir;
  std::size_t fast_fir_half = 0, fast_fir_front = 0;
};

// The design for ratio up / down at this preset and arithmetic type: the cached one, or one
// designed now (which may take seconds for extreme ratios) and cached if it fits.
template <typename S>
[[nodiscard]] std::shared_ptr<const FilterDesign<S>> cached_design(std::uint64_t up,
                                                                   std::uint64_t down,
                                                                   const FilterSpec& spec);
extern template std::shared_ptr<const FilterDesign<float>> cached_design<float>(
    std::uint64_t, std::uint64_t, const FilterSpec&);
extern template std::shared_ptr<const FilterDesign<double>> cached_design<double>(
    std::uint64_t, std::uint64_t, const FilterSpec&);

}  // namespace anunzi::detail
