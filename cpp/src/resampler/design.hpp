#pragma once
// Internal to the resampler: the polyphase coefficient table of one stage of a cascade,
// designed from its prototype once and shared, immutable, by every stream that needs it (the
// design cache keeps recent ones for streams built later).
#include <cstddef>
#include <cstdint>
#include <memory>
#include <mutex>
#include <new>
#include <type_traits>
#include <utility>
#include <vector>

#include "prototype.hpp"
#include "spec.hpp"
#include "stages.hpp"

namespace anunzi::detail {

// One exact coefficient row per output phase while the table stays cache-friendly; beyond it,
// rows at 1/kInterpPhases steps and cubic (Lagrange) interpolation between four of them, whose
// error stays near -190 dB, below every preset's target.
constexpr std::uint64_t kMaxExactPhases = 4096;
constexpr std::size_t kMaxExactTableBytes = std::size_t{8} << 20;
constexpr std::uint64_t kInterpPhases = 256;
// Refuse designs beyond this (e.g. 192 kHz -> 1 Hz at VHQ) rather than exhaust memory.
constexpr double kMaxTableBytes = 256.0 * (1 << 20);

// 64-byte aligned storage, so the vector loads of coefficient rows and blocks never straddle
// cache lines.
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

// The same storage, but resize() leaves new elements uninitialised: for sample buffers whose
// new part is written right after they grow, which would otherwise be written twice.
template <typename T>
struct UninitialisedAllocator : AlignedAllocator<T> {
  using value_type = T;
  template <typename U>
  struct rebind {
    using other = UninitialisedAllocator<U>;
  };
  UninitialisedAllocator() = default;
  template <typename U>
  explicit UninitialisedAllocator(const UninitialisedAllocator<U>&) noexcept {}
  template <typename U>
  void construct(U* p) noexcept {
    ::new (static_cast<void*>(p)) U;
  }
  template <typename U, typename... Args>
  void construct(U* p, Args&&... args) {
    ::new (static_cast<void*>(p)) U(std::forward<Args>(args)...);
  }
};

template <typename T>
using SampleVector = std::vector<T, UninitialisedAllocator<T>>;

// Interpolated rows are padded to, and read in, blocks of one 512-bit vector.
template <typename S>
inline constexpr std::size_t kLanes = std::is_same<S, float>::value ? 16 : 8;

// One stage's designed filter: coefficient rows, one per phase. Immutable once built, so
// streams with the same stage share one.
template <typename S>
struct FilterDesign {
  // rows x taps: row r holds the taps of the output phase at fractional position r / rows
  // (exact rows) or the interpolation rows (see kInterpPhases); tap n multiplies the input
  // sample at offset n - before from the output's integer position. Exact rows have no
  // column that is zero in every row (so `after` is the latency the design needs).
  AlignedVector<S> table;
  std::size_t taps = 0, before = 0, after = 0, rows = 0;
  bool interpolated = false;
  bool halfband = false;
  PrototypeKind kind = PrototypeKind::kKaiser;
  // Nonzero coefficients per row on average: the multiply-adds an output costs.
  double nonzero_taps = 0;
  // The coefficients rearranged for a stage's kernels on each ISA (stage.cpp), built by the
  // first stage that needs them and shared like the table.
  mutable std::mutex layouts_mutex;
  mutable std::shared_ptr<const void> layouts[4];
};

// The design of `stage` in this arithmetic type: the cached one, or one designed now (which
// may take seconds for extreme ratios) and cached if it fits.
template <typename S>
[[nodiscard]] std::shared_ptr<const FilterDesign<S>> cached_design(const StageSpec& stage);
extern template std::shared_ptr<const FilterDesign<float>> cached_design<float>(
    const StageSpec&);
extern template std::shared_ptr<const FilterDesign<double>> cached_design<double>(
    const StageSpec&);

}  // namespace anunzi::detail
