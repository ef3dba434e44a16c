// ctest for the instruction-set level: what ANUNZI_FAST_ISA picks (a bad value falls back to
// the best level and is reported, never refused), and set_active_isa.
#include <cstdio>
#include <cstdlib>
#include <string>

#include "anunzi/cpu_dispatch.hpp"
#include "check.hpp"

namespace {

using anunzi::Isa;
using anunzi::IsaChoice;

bool up_to_avx2(Isa isa) { return isa != Isa::kAvx512; }
bool portable_only(Isa isa) { return isa == Isa::kPortable; }

bool same(IsaChoice a, IsaChoice b) { return a.isa == b.isa && a.ignored == b.ignored; }

void test_requests() {
  // Not set, or set empty: the best level, nothing to report.
  CHECK(same(anunzi::choose_isa(nullptr, up_to_avx2), {Isa::kAvx2, false}));
  CHECK(same(anunzi::choose_isa("", up_to_avx2), {Isa::kAvx2, false}));
  // A level this CPU runs is taken as asked, the best one or a lower one.
  CHECK(same(anunzi::choose_isa("avx2", up_to_avx2), {Isa::kAvx2, false}));
  CHECK(same(anunzi::choose_isa("portable", up_to_avx2), {Isa::kPortable, false}));
  CHECK(same(anunzi::choose_isa("sse2", up_to_avx2), {Isa::kSse2, false}));
  // Unknown or unsupported: the best level, reported as ignored.
  CHECK(same(anunzi::choose_isa("avx512", up_to_avx2), {Isa::kAvx2, true}));
  CHECK(same(anunzi::choose_isa("neon9000", up_to_avx2), {Isa::kAvx2, true}));
  CHECK(same(anunzi::choose_isa("AVX2", up_to_avx2), {Isa::kAvx2, true}));  // names are exact
  CHECK(same(anunzi::choose_isa("avx2", portable_only), {Isa::kPortable, true}));
  // On this CPU.
  CHECK(same(anunzi::choose_isa("portable"), {Isa::kPortable, false}));
  CHECK(anunzi::choose_isa("bogus").isa == anunzi::best_supported_isa());
}

// ctest runs this program twice: as the environment has it, and with ANUNZI_FAST_ISA=neon9000.
void test_active_level() {
  const char* request = std::getenv("ANUNZI_FAST_ISA");
  const IsaChoice expected = anunzi::choose_isa(request);
  const Isa before = anunzi::active_isa();
  CHECK(before == expected.isa);
  CHECK(anunzi::ignored_isa_request() == (expected.ignored ? request : ""));
  if (request != nullptr && std::string(request) == "neon9000") {
    CHECK(expected.ignored && before == anunzi::best_supported_isa());
  }
  CHECK(anunzi::set_active_isa(Isa::kPortable));
  CHECK(anunzi::active_isa() == Isa::kPortable);
  for (Isa isa : {Isa::kSse2, Isa::kAvx2, Isa::kAvx512}) {
    // A level the CPU cannot run changes nothing.
    CHECK(anunzi::set_active_isa(isa) == anunzi::isa_supported(isa));
    CHECK(anunzi::isa_supported(anunzi::active_isa()));
  }
  CHECK(anunzi::set_active_isa(before));
  for (Isa isa : {Isa::kPortable, Isa::kSse2, Isa::kAvx2, Isa::kAvx512}) {
    CHECK(anunzi::isa_from_name(anunzi::isa_name(isa)) == isa);
  }
  CHECK(!anunzi::isa_from_name("mmx"));
}

}  // namespace

int main() {
  test_requests();
  test_active_level();
  if (anunzi_test::failures() != 0) {
    std::fprintf(stderr, "%d check(s) failed\n", anunzi_test::failures());
    return 1;
  }
  std::printf("test_cpu_dispatch: all checks passed\n");
  return 0;
}
