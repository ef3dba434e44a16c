#pragma once
// The sample types the core reads and writes: one vocabulary for its components and for both
// Python modules' bindings.
#include <cstddef>

namespace anunzi {

enum class SampleType : int { kFloat32 = 0, kFloat64 = 1, kInt16 = 2, kInt32 = 3 };

inline constexpr SampleType kAllSampleTypes[] = {SampleType::kFloat32, SampleType::kFloat64,
                                                 SampleType::kInt16, SampleType::kInt32};

[[nodiscard]] constexpr std::size_t sample_size(SampleType type) {
  switch (type) {
    case SampleType::kInt16:
      return 2;
    case SampleType::kFloat32:
    case SampleType::kInt32:
      return 4;
    case SampleType::kFloat64:
      return 8;
  }
  return 0;
}

// numpy's name for the type.
[[nodiscard]] constexpr const char* sample_type_name(SampleType type) {
  switch (type) {
    case SampleType::kFloat32:
      return "float32";
    case SampleType::kFloat64:
      return "float64";
    case SampleType::kInt16:
      return "int16";
    case SampleType::kInt32:
      return "int32";
  }
  return "unknown";
}

}  // namespace anunzi
