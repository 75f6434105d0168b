// The autotuner (autotune/): knob spaces and pruning, the search, the records
// file, candidate isolation with every way a candidate can fail, and a small
// real tuning run that writes a schedules file and resumes from its records.
#include <gtest/gtest.h>
#include <signal.h>
#include <unistd.h>

#include <chrono>
#include <cmath>
#include <filesystem>
#include <fstream>
#include <map>
#include <set>
#include <sstream>
#include <string>
#include <thread>

#include "amq/autotune/autoschedulers.h"
#include "amq/autotune/cpu_identity.h"
#include "amq/autotune/evaluate.h"
#include "amq/autotune/isolate.h"
#include "amq/autotune/jit_kernel.h"
#include "amq/autotune/knobs.h"
#include "amq/autotune/model_tune.h"
#include "amq/autotune/pipeline.h"
#include "amq/autotune/records.h"
#include "amq/autotune/schedules_file.h"
#include "amq/autotune/search.h"
#include "amq/autotune/tuner.h"
#include "isa_knobs.h"

using namespace amq::tune;

namespace {

#if defined(__SANITIZE_ADDRESS__)
#define AMQ_TEST_ASAN 1
#elif defined(__has_feature)
#if __has_feature(address_sanitizer)
#define AMQ_TEST_ASAN 1
#endif
#endif

// AddressSanitizer builds (cmake/amqSanitize.cmake) compile a candidate several
// times slower: ASan's allocator, with its quarantine, serves every allocation
// of libHalide and LLVM. A time limit that a child has to get past its compile
// within is this many times longer there.
#ifdef AMQ_TEST_ASAN
constexpr double kCompileSlowdown = 4;
#else
constexpr double kCompileSlowdown = 1;
#endif

// A fresh directory for one test's files.
std::string temp_dir(const std::string &name) {
    auto dir = std::filesystem::temp_directory_path() /
               ("amq_autotune_" + name + "_" + std::to_string(getpid()));
    std::filesystem::remove_all(dir);
    std::filesystem::create_directories(dir);
    return dir.string();
}

std::vector<std::string> read_lines(const std::string &path) {
    std::ifstream f(path);
    std::vector<std::string> lines;
    for (std::string l; std::getline(f, l);) lines.push_back(l);
    return lines;
}

Problem bgemv_problem(size_t rows, size_t cols, int k_w, int k_a, int threads = 1) {
    Problem p;
    p.pipeline = "bgemv";
    p.rows = rows;
    p.cols = cols;
    p.k_w = k_w;
    p.k_a = k_a;
    p.threads = threads;
    return p;
}

const Halide::Target kAvx512("x86-64-linux-avx-avx2-avx512-avx512_skylake-f16c-fma-sse41");
const Halide::Target kAvx2("x86-64-linux-avx-avx2-f16c-fma-sse41");

Knobs bgemv_knobs(const std::string &layout, int tile, int unroll, int parallel_tiles) {
    return {{"layout", layout},
            {"tile", tile},
            {"unroll_words", unroll},
            {"parallel_tiles", parallel_tiles}};
}

const char *kToySpace = R"({
  "format": "amq-knob-space", "version": 1, "pipeline": "toy",
  "knobs": [
    {"name": "a", "values": [1, 2, 3, 4, 5, 6]},
    {"name": "b", "values": ["x", "y", "z"]},
    {"name": "c", "values": [1, 2, 4, 8]}
  ]
})";

// A made-up objective over the toy space: lowest at a=4, b="y", c=2.
double toy_score(const Knobs &k) {
    const double a = k["a"].get<int>(), c = k["c"].get<int>();
    return 1.0 + std::abs(a - 4) * 0.1 + (k["b"] == "y" ? 0.0 : 0.05) +
           std::abs(std::log2(c) - 1) * 0.03;
}

// The toy rule: a = 6 never works.
std::string toy_prune(Knobs &k) { return k["a"] == 6 ? "a = 6 is not allowed" : ""; }

}  // namespace

// ---------------------------------------------------------------- knob spaces

TEST(KnobSpace, BuiltinBgemvSpaceIsData) {
    const KnobSpace &s = builtin_space("bgemv");
    EXPECT_EQ(s.pipeline(), "bgemv");
    ASSERT_EQ(s.knobs().size(), 4u);
    EXPECT_EQ(s.knobs()[0].name, "layout");
    EXPECT_EQ(s.knobs()[1].name, "tile");
    EXPECT_EQ(s.size(), 3u * 4u * 4u * 7u);
    EXPECT_EQ(s.at(0), bgemv_knobs("tiled", 4, 1, 4));
    EXPECT_EQ(s.at(s.size() - 1), bgemv_knobs("interleaved", 32, 8, 256));
    // Every index gives a distinct point of the space.
    std::set<std::string> keys;
    for (uint64_t i = 0; i < s.size(); ++i) {
        EXPECT_EQ(s.check(s.at(i)), "");
        keys.insert(knobs_key(s.at(i)));
    }
    EXPECT_EQ(keys.size(), s.size());
    EXPECT_THROW(builtin_space("no_such_pipeline"), std::runtime_error);
}

TEST(KnobSpace, BadFilesAreRejectedWithTheReason) {
    const std::vector<std::pair<std::string, std::string>> cases = {
        {"{", "not valid JSON"},
        {R"({"format": "other", "version": 1, "pipeline": "p", "knobs": []})", "\"format\""},
        {R"({"format": "amq-knob-space", "version": 2, "pipeline": "p", "knobs": []})",
         "\"version\" is not 1"},
        {R"({"format": "amq-knob-space", "version": 1, "knobs": [{"name": "a", "values": [1]}]})",
         "\"pipeline\""},
        {R"({"format": "amq-knob-space", "version": 1, "pipeline": "p", "knobs": []})",
         "\"knobs\" must be a non-empty array"},
        {R"({"format": "amq-knob-space", "version": 1, "pipeline": "p",
             "knobs": [{"name": "a", "values": [1]}, {"name": "a", "values": [2]}]})",
         "knob 'a' is listed twice"},
        {R"({"format": "amq-knob-space", "version": 1, "pipeline": "p",
             "knobs": [{"name": "a", "values": []}]})",
         "knob 'a': \"values\" must be a non-empty array"},
        {R"({"format": "amq-knob-space", "version": 1, "pipeline": "p",
             "knobs": [{"name": "a", "values": [1, 1.5]}]})",
         "knob 'a': value 1.5 is neither an integer nor a string"},
        {R"({"format": "amq-knob-space", "version": 1, "pipeline": "p",
             "knobs": [{"name": "a", "values": [2, 2]}]})",
         "knob 'a': value 2 is listed twice"},
        {R"({"format": "amq-knob-space", "version": 1, "pipeline": "p", "knobs": [{"values": [1]}]})",
         "knob #1"},
    };
    for (const auto &[text, expected] : cases) {
        try {
            KnobSpace::parse(text, "bad.json");
            ADD_FAILURE() << "accepted: " << text;
        } catch (const std::runtime_error &e) {
            const std::string msg = e.what();
            EXPECT_NE(msg.find("bad.json"), std::string::npos) << msg;
            EXPECT_NE(msg.find(expected), std::string::npos) << msg << "\nexpected: " << expected;
        }
    }
}

TEST(KnobSpace, CheckAndMutate) {
    const KnobSpace s = KnobSpace::parse(kToySpace, "toy.json");
    EXPECT_EQ(s.check({{"a", 1}, {"b", "x"}, {"c", 4}}), "");
    EXPECT_NE(s.check({{"a", 1}, {"b", "x"}}).find("knob 'c' is missing"), std::string::npos);
    EXPECT_NE(s.check({{"a", 7}, {"b", "x"}, {"c", 4}}).find("not one of"), std::string::npos);
    EXPECT_NE(s.check({{"a", 1}, {"b", "x"}, {"c", 4}, {"d", 0}}).find("'d' is not a knob"),
              std::string::npos);
    std::mt19937_64 rng(3);
    Knobs k = {{"a", 1}, {"b", "x"}, {"c", 1}};
    int changed = 0;
    for (int i = 0; i < 200; ++i) {
        Knobs m = s.mutate(k, rng);
        ASSERT_EQ(s.check(m), "") << m.dump();
        changed += m != k;
        // Ordered values move to a neighbour.
        EXPECT_LE(std::abs(m["a"].get<int>() - k["a"].get<int>()), 1);
        k = m;
    }
    EXPECT_GT(changed, 150);
}

TEST(KnobSpace, HandDefaultsComeFromSchedules) {
    const Knobs d = hand_defaults("bgemv");
    EXPECT_EQ(d.at("layout"), "tiled");
    EXPECT_TRUE(d.contains("tile") && d.contains("unroll_words") && d.contains("parallel_tiles"));
    EXPECT_THROW(hand_defaults("no_such_pipeline"), std::runtime_error);
}

// -------------------------------------------------------------------- pruning

// generators/isa_knobs.h: each ISA variant of a multi-target library reads its
// own knobs from the one isa_knobs param.
TEST(IsaKnobs, EachVariantReadsItsOwnKnobs) {
    const std::string spec = "avx2/unroll_words:4,parallel_tiles:32+sse41/unroll_words:2";
    const Halide::Target avx512("x86-64-linux-avx-avx2-avx512-avx512_skylake-f16c-fma-sse41"),
        avx2("x86-64-linux-avx-avx2-f16c-fma-sse41"), sse41("x86-64-linux-sse41");
    amq::gen::IsaKnobs top(spec, avx512, "bgemv"), mid(spec, avx2, "bgemv"), low(spec, sse41, "bgemv");
    EXPECT_EQ(top.isa(), "avx512");
    EXPECT_EQ(top.get("unroll_words", 1), 1);
    EXPECT_EQ(top.get("parallel_tiles", 64), 64);
    EXPECT_EQ(mid.get("unroll_words", 1), 4);
    EXPECT_EQ(mid.get("parallel_tiles", 64), 32);
    EXPECT_EQ(low.get("unroll_words", 1), 2);
    EXPECT_EQ(low.get("parallel_tiles", 64), 64);
    EXPECT_EQ(low.get("layout", std::string("tiled")), "tiled");
    for (auto *k : {&top, &mid, &low}) EXPECT_NO_THROW(k->done());
    amq::gen::IsaKnobs none("", avx2, "bgemv");
    EXPECT_EQ(none.get("unroll_words", 3), 3);
    EXPECT_NO_THROW(none.done());
}

TEST(IsaKnobs, BadSpecsAndUnreadKnobsAreErrors) {
    const Halide::Target avx2("x86-64-linux-avx-avx2-f16c-fma-sse41");
    auto message = [&](const std::string &spec, bool read_all) {
        try {
            amq::gen::IsaKnobs k(spec, avx2, "bgemv");
            if (read_all) k.get("unroll_words", 1);
            k.done();
        } catch (const std::invalid_argument &e) {
            return std::string(e.what());
        }
        return std::string("no error");
    };
    EXPECT_EQ(message("avx9/unroll_words:2", true),
              "bgemv generator: isa_knobs: 'avx9' is not an ISA variant (avx512, avx2, sse41)");
    EXPECT_EQ(message("avx2:unroll_words", true),
              "bgemv generator: isa_knobs: section 'avx2:unroll_words' is not ISA/knob:value,...");
    EXPECT_EQ(message("avx2/unroll_words", true),
              "bgemv generator: isa_knobs: 'unroll_words' in the avx2 section is not knob:value");
    EXPECT_EQ(message("avx2/unroll_words:x", true),
              "bgemv generator: isa_knobs: knob unroll_words = 'x' is not an integer");
    // A knob the generator never reads: a misspelling, in any section.
    EXPECT_EQ(message("sse41/unroll_wrods:2", true),
              "bgemv generator: isa_knobs: no knob 'unroll_wrods' in this generator");
}

TEST(BgemvPruning, OneThreadIgnoresTheTaskSize) {
    auto p = make_pipeline(bgemv_problem(4096, 1024, 2, 2), kAvx512);
    Knobs a = bgemv_knobs("tiled", 8, 2, 4), b = bgemv_knobs("tiled", 8, 2, 256);
    EXPECT_EQ(p->prune(a), "");
    EXPECT_EQ(p->prune(b), "");
    EXPECT_EQ(a, b);  // one candidate, not seven
    EXPECT_EQ(a["parallel_tiles"], hand_defaults("bgemv")["parallel_tiles"]);
    // 3 layouts x 4 tiles x 4 unrolls, nothing else skipped at this shape.
    Search s(p->space(), p->defaults(), [&](Knobs &k) { return p->prune(k); });
    EXPECT_TRUE(s.exhaustive());
    EXPECT_EQ(s.valid() + 1, 48u);
}

TEST(BgemvPruning, InvalidCombinationsAreSkippedWithTheReason) {
    auto reason = [](const Problem &pr, const Halide::Target &t, Knobs k) {
        return make_pipeline(pr, t)->prune(k);
    };
    // 256 columns are 4 words: an unroll by 8 is skipped, by 4 is not.
    EXPECT_NE(reason(bgemv_problem(64, 256, 2, 2), kAvx512, bgemv_knobs("tiled", 8, 8, 64))
                  .find("unroll_words 8 exceeds the 4 word(s)"),
              std::string::npos);
    EXPECT_EQ(reason(bgemv_problem(64, 256, 2, 2), kAvx512, bgemv_knobs("tiled", 8, 4, 64)), "");
    // 32 x 4 x 4 u64 counters need 64 zmm registers; 16 x 4 x 4 fit in 32.
    EXPECT_NE(reason(bgemv_problem(64, 256, 4, 4), kAvx512, bgemv_knobs("tiled", 32, 1, 64))
                  .find("need 64 vector registers (the target has 32)"),
              std::string::npos);
    EXPECT_EQ(reason(bgemv_problem(64, 256, 4, 4), kAvx512, bgemv_knobs("tiled", 16, 1, 64)), "");
    // AVX2: 4 u64 lanes, 16 registers.
    EXPECT_NE(reason(bgemv_problem(64, 256, 2, 2), kAvx2, bgemv_knobs("plane_major", 32, 1, 64))
                  .find("need 32 vector registers (the target has 16)"),
              std::string::npos);
    // Three rows: a tile of 8 is skipped, a tile of 4 is not.
    EXPECT_NE(reason(bgemv_problem(3, 64, 1, 1), kAvx512, bgemv_knobs("tiled", 8, 1, 64))
                  .find("tile 8 exceeds the 3 row(s)"),
              std::string::npos);
    EXPECT_EQ(reason(bgemv_problem(3, 64, 1, 1), kAvx512, bgemv_knobs("tiled", 4, 1, 64)), "");
    // Two threads, 256 rows = 32 tiles of 8: 32 tiles per task leave one task.
    EXPECT_NE(reason(bgemv_problem(256, 64, 2, 2, 2), kAvx512, bgemv_knobs("tiled", 8, 1, 32))
                  .find("one task"),
              std::string::npos);
    EXPECT_EQ(reason(bgemv_problem(256, 64, 2, 2, 2), kAvx512, bgemv_knobs("tiled", 8, 1, 16)), "");
}

TEST(BgemvPruning, BadProblemsAreRefused) {
    EXPECT_THROW(make_pipeline(bgemv_problem(0, 64, 2, 2), kAvx512), std::invalid_argument);
    EXPECT_THROW(make_pipeline(bgemv_problem(64, 64, 5, 2), kAvx512), std::invalid_argument);
    EXPECT_THROW(make_pipeline(bgemv_problem(64, 64, 2, 2, 0), kAvx512), std::invalid_argument);
    Problem p = bgemv_problem(64, 64, 2, 2);
    p.pipeline = "nope";
    try {
        make_pipeline(p, kAvx512);
        ADD_FAILURE();
    } catch (const std::invalid_argument &e) {
        EXPECT_NE(std::string(e.what()).find("tunable: bgemm, bgemv, f32_gemv"), std::string::npos) << e.what();
    }
}

// --------------------------------------------------------------------- search

namespace {

// Runs a search against toy_score, observing every proposal; returns the
// proposals as "rung:key".
std::vector<std::string> run_toy(Search &s, size_t limit) {
    std::vector<std::string> seq;
    while (seq.size() < limit) {
        auto p = s.next();
        if (!p) break;
        seq.push_back(std::to_string(p->rung) + ":" + knobs_key(p->knobs));
        s.observe(p->knobs, p->rung, toy_score(p->knobs));
    }
    return seq;
}

}  // namespace

TEST(Search, SeededSampledSearchIsDeterministic) {
    const KnobSpace space = KnobSpace::parse(kToySpace, "toy.json");
    SearchOptions o;
    o.exhaustive_limit = 16;  // 60 valid points: sampled
    o.batch = 9;
    o.seed = 7;
    const Knobs start = {{"a", 1}, {"b", "x"}, {"c", 1}};
    Search s1(space, start, toy_prune, o), s2(space, start, toy_prune, o);
    EXPECT_FALSE(s1.exhaustive());
    const auto seq1 = run_toy(s1, 40), seq2 = run_toy(s2, 40);
    ASSERT_EQ(seq1.size(), 40u);
    EXPECT_EQ(seq1, seq2);
    EXPECT_EQ(seq1[0], "0:" + knobs_key(start));  // the start comes first
    for (const auto &p : seq1) EXPECT_EQ(p.find("\"a\":6"), std::string::npos) << p;
    o.seed = 8;
    Search s3(space, start, toy_prune, o);
    EXPECT_NE(run_toy(s3, 40), seq1);
    // Mutations of the best find the optimum of this smooth objective.
    const auto best = s1.best();
    ASSERT_TRUE(best);
    EXPECT_LT(best->second, toy_score(start));
}

TEST(Search, SmallSpaceIsExhaustiveWithSuccessiveHalving) {
    const KnobSpace space = KnobSpace::parse(kToySpace, "toy.json");
    const Knobs start = {{"a", 1}, {"b", "x"}, {"c", 1}};
    Search s(space, start, toy_prune, SearchOptions{});  // 60 valid <= 64
    ASSERT_TRUE(s.exhaustive());
    EXPECT_EQ(s.valid() + 1, 60u);
    EXPECT_EQ(s.pruned(), 12u);  // a = 6
    const auto seq = run_toy(s, 1000);
    std::map<int, int> per_rung;
    std::set<std::string> rung0;
    for (const auto &p : seq) {
        ++per_rung[p[0] - '0'];
        if (p[0] == '0') EXPECT_TRUE(rung0.insert(p).second) << "proposed twice: " << p;
    }
    EXPECT_EQ(per_rung[0], 60);
    EXPECT_EQ(per_rung[1], 20 + 1);  // the best third, and the start
    EXPECT_EQ(per_rung[2], 7 + 1);
    const auto best = s.best();
    ASSERT_TRUE(best);
    EXPECT_EQ(best->first, Knobs({{"a", 4}, {"b", "y"}, {"c", 2}}));
    EXPECT_FALSE(s.next());  // complete
}

TEST(Search, ResumesFromEarlierResults) {
    const KnobSpace space = KnobSpace::parse(kToySpace, "toy.json");
    const Knobs start = {{"a", 1}, {"b", "x"}, {"c", 1}};
    Search first(space, start, toy_prune, SearchOptions{});
    const auto done = run_toy(first, 25);  // interrupted after 25 trials
    Search resumed(space, start, toy_prune, SearchOptions{});
    for (const auto &p : done) {
        const Knobs k = Knobs::parse(p.substr(2));
        resumed.observe(k, p[0] - '0', toy_score(k));
    }
    const auto rest = run_toy(resumed, 1000);
    for (const auto &p : rest)
        EXPECT_EQ(std::find(done.begin(), done.end(), p), done.end()) << "repeated: " << p;
    EXPECT_EQ(done.size() + rest.size(), 60u + 21u + 8u);
    EXPECT_EQ(resumed.best()->first, Knobs({{"a", 4}, {"b", "y"}, {"c", 2}}));
}

TEST(Search, FailedCandidatesAreNeverPromoted) {
    const KnobSpace space = KnobSpace::parse(kToySpace, "toy.json");
    const Knobs start = {{"a", 1}, {"b", "x"}, {"c", 1}};
    Search s(space, start, toy_prune, SearchOptions{});
    const Knobs best = {{"a", 4}, {"b", "y"}, {"c", 2}};
    int proposals = 0;
    while (auto p = s.next()) {
        ++proposals;
        if (p->knobs == best) {
            EXPECT_EQ(p->rung, 0);
            s.observe(p->knobs, p->rung, std::nullopt);  // it crashed
        } else {
            s.observe(p->knobs, p->rung, toy_score(p->knobs));
        }
    }
    EXPECT_NE(s.best()->first, best);
    EXPECT_GT(proposals, 60);
}

// -------------------------------------------------------------------- records

namespace {

Record sample_record(const std::string &kind_name_, double median) {
    Record r;
    r.time = "2024-01-02T03:04:05Z";
    r.cpu.id = "test-cpu-f1m2";
    r.cpu.vendor = "AMD";
    r.cpu.name = "Test CPU";
    r.cpu.family = 1;
    r.cpu.model = 2;
    r.cpu.features = {"avx2", "avx512f"};
    r.cpu.l1d_bytes = 49152;
    r.cpu.l2_bytes = 1 << 20;
    r.cpu.l3_bytes = 32 << 20;
    r.halide_version = "14.0.0";
    r.target = "x86-64-linux-avx2";
    r.problem = bgemv_problem(4096, 1024, 2, 2);
    r.candidate.knobs = bgemv_knobs("tiled", 16, 2, 64);
    r.source = "search";
    r.rung = 1;
    EXPECT_TRUE(parse_kind(kind_name_, r.measurement.kind));
    if (r.measurement.ok()) {
        r.measurement.kernel = {median, 0.05, 11};
    } else {
        r.measurement.error = "killed by SIGSEGV (Segmentation fault) while verify 0";
    }
    r.measurement.baseline = {12.5, 0.04, 11};
    r.measurement.compile_ms = 210.5;
    r.measurement.seconds = 0.4;
    return r;
}

}  // namespace

TEST(Records, RoundTrip) {
    const std::string dir = temp_dir("records");
    RecordFile f(dir + "/sub/r.jsonl");
    Record a = sample_record("ok", 10.25), b = sample_record("crash", 0);
    b.candidate.autoscheduler = "Adams2019";
    b.candidate.knobs = {{"layout", "plane_major"}, {"tile", 1}};
    b.candidate.machine = {2, 1 << 20, 40};
    b.source = "autoscheduler";
    f.append(a);
    f.append(b);
    const auto lines = read_lines(f.path());
    ASSERT_EQ(lines.size(), 3u);
    EXPECT_NE(lines[0].find("\"generated_by\":\"amq tune\""), std::string::npos);
    std::vector<std::string> warnings;
    const auto got = f.load([&](const std::string &w) { warnings.push_back(w); });
    EXPECT_TRUE(warnings.empty());
    ASSERT_EQ(got.size(), 2u);
    EXPECT_EQ(record_to_json(got[0]), record_to_json(a));
    EXPECT_EQ(record_to_json(got[1]), record_to_json(b));
    EXPECT_EQ(got[0].measurement.kernel.median_us, 10.25);
    EXPECT_DOUBLE_EQ(got[0].measurement.ratio(), 10.25 / 12.5);
    EXPECT_EQ(got[1].measurement.kind, ErrorKind::crash);
    EXPECT_EQ(got[1].candidate.autoscheduler, "Adams2019");
    EXPECT_EQ(got[1].candidate.machine.parallelism, 2);
    EXPECT_TRUE(got[0].same_setting(got[1]));
    Record other = a;
    other.problem.threads = 2;
    EXPECT_FALSE(a.same_setting(other));
    // The failed candidate's line holds nulls, not made-up times.
    const auto j = nlohmann::json::parse(lines[2]);
    EXPECT_TRUE(j["median_us"].is_null());
    EXPECT_EQ(j["kind"], "crash");
    EXPECT_EQ(j["format_version"], 1);
    std::filesystem::remove_all(dir);
}

TEST(Records, CorruptAndTruncatedLinesAreSkippedWithAWarning) {
    const std::string dir = temp_dir("corrupt");
    RecordFile f(dir + "/r.jsonl");
    f.append(sample_record("ok", 9.0));
    const std::string good = record_to_json(sample_record("ok", 8.0)).dump();
    nlohmann::ordered_json v2 = record_to_json(sample_record("ok", 7.0));
    v2["format_version"] = 2;
    nlohmann::ordered_json no_kind = record_to_json(sample_record("ok", 7.0));
    no_kind.erase("kind");
    {
        std::ofstream out(f.path(), std::ios::app);
        out << "this is not json\n"
            << v2.dump() << "\n"
            << no_kind.dump() << "\n"
            << "\n"
            << good.substr(0, good.size() / 2);  // a write cut short, no newline
    }
    f.append(sample_record("ok", 6.0));  // closes the cut line first
    std::vector<std::string> warnings;
    const auto got = f.load([&](const std::string &w) { warnings.push_back(w); });
    ASSERT_EQ(got.size(), 2u);
    EXPECT_EQ(got[0].measurement.kernel.median_us, 9.0);
    EXPECT_EQ(got[1].measurement.kernel.median_us, 6.0);
    ASSERT_EQ(warnings.size(), 4u);
    EXPECT_NE(warnings[0].find(f.path() + " line 3 skipped"), std::string::npos) << warnings[0];
    EXPECT_NE(warnings[1].find("line 4 skipped: format_version 2 (this amq reads 1)"),
              std::string::npos)
        << warnings[1];
    EXPECT_NE(warnings[2].find("line 5 skipped"), std::string::npos) << warnings[2];
    EXPECT_NE(warnings[2].find("kind"), std::string::npos) << warnings[2];
    EXPECT_NE(warnings[3].find("line 7 skipped"), std::string::npos) << warnings[3];
    // A missing file has no records and no warnings.
    EXPECT_TRUE(RecordFile(dir + "/none.jsonl")
                    .load([&](const std::string &w) { ADD_FAILURE() << w; })
                    .empty());
    std::filesystem::remove_all(dir);
}

// ------------------------------------------------------------------ isolation

TEST(Isolation, ResultsCrashesAndHangs) {
    ChildOutcome ok = run_isolated(
        [](ChildChannel &c) {
            c.stage("work");
            fprintf(stderr, "a message on stderr\n");
            c.result("{\"x\": 1}");
        },
        10);
    EXPECT_EQ(ok.end, ChildOutcome::End::exited);
    EXPECT_EQ(ok.exit_code, 0);
    EXPECT_EQ(ok.result, "{\"x\": 1}");
    EXPECT_NE(ok.stderr_tail.find("a message on stderr"), std::string::npos);

    ChildOutcome segv = run_isolated(
        [](ChildChannel &c) {
            c.stage("verify 0");
            // Killed by the signal as in a build without sanitizers: AddressSanitizer's
            // SIGSEGV handler (ASan builds) would report and exit with a status instead.
            signal(SIGSEGV, SIG_DFL);
            raise(SIGSEGV);
        },
        10);
    EXPECT_EQ(segv.end, ChildOutcome::End::signaled);
    EXPECT_EQ(segv.signal, SIGSEGV);
    EXPECT_NE(segv.describe().find("killed by SIGSEGV"), std::string::npos) << segv.describe();
    EXPECT_NE(segv.describe().find("while verify 0"), std::string::npos) << segv.describe();

    const auto t0 = std::chrono::steady_clock::now();
    ChildOutcome hang = run_isolated(
        [](ChildChannel &c) {
            c.stage("time");
            for (;;) pause();
        },
        0.5);
    const double secs =
        std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
    EXPECT_EQ(hang.end, ChildOutcome::End::timed_out);
    EXPECT_LT(secs, 5.0);
    EXPECT_NE(hang.describe().find("timed out"), std::string::npos);

    ChildOutcome thrown =
        run_isolated([](ChildChannel &) { throw std::runtime_error("boom"); }, 10);
    EXPECT_EQ(thrown.exit_code, 3);
    EXPECT_NE(thrown.stage.find("boom"), std::string::npos);
    EXPECT_FALSE(thrown.sanitizer_report);
}

#ifdef AMQ_TEST_ASAN
// In an AddressSanitizer build a report in the child (here a heap overflow) is
// told apart from a candidate's crash, so that the evaluation fails with it
// instead of recording a failed candidate.
TEST(Isolation, ASanReportInTheChildIsToldApart) {
    ChildOutcome report = run_isolated(
        [](ChildChannel &c) {
            c.stage("verify 0");
            std::vector<int> v(3);
            volatile int *p = v.data();
            p[3] = 1;  // one past the end
        },
        10);
    EXPECT_TRUE(report.sanitizer_report);
    EXPECT_NE(report.describe().find("stopped by a sanitizer report"), std::string::npos)
        << report.describe();
    EXPECT_NE(report.describe().find("while verify 0"), std::string::npos) << report.describe();
    EXPECT_NE(report.stderr_tail.find("heap-buffer-overflow"), std::string::npos)
        << report.stderr_tail;
}
#endif

// ------------------------------------------------- evaluation (real JIT code)

TEST(Evaluation, EveryFailureIsRecordedAndTheNextCandidateStillRuns) {
    auto p = make_pipeline(bgemv_problem(100, 130, 2, 3), Halide::get_host_target());
    Evaluator ev(*p, EvalOptions{Halide::get_host_target(), 20});
    TimingOptions quick{0.2, 3, 5, 0.05, 0.2};
    auto candidate = [&](Fault f) {
        Candidate c;
        c.knobs = bgemv_knobs("tiled", 4, 2, 64);
        p->prune(c.knobs);
        c.fault = f;
        return c;
    };
    const std::vector<std::pair<Fault, ErrorKind>> cases = {
        {Fault::compile_error, ErrorKind::compile_error},
        {Fault::wrong_result, ErrorKind::wrong_result},
        {Fault::crash, ErrorKind::crash},
        {Fault::illegal_instruction, ErrorKind::crash},
        {Fault::none, ErrorKind::ok},
    };
    for (const auto &[fault, kind] : cases) {
        const Measurement m = ev.evaluate(candidate(fault), quick);
        EXPECT_EQ(m.kind, kind) << kind_name(m.kind) << ": " << m.error;
        if (kind == ErrorKind::ok) {
            EXPECT_GT(m.kernel.median_us, 0);
            EXPECT_GT(m.baseline.median_us, 0);
            EXPECT_GT(m.ratio(), 0);
            EXPECT_GT(m.compile_ms, 0);
        } else {
            EXPECT_FALSE(m.error.empty());
        }
        if (fault == Fault::wrong_result)
            EXPECT_NE(m.error.find("rows wrong at 77x130"), std::string::npos) << m.error;
        if (fault == Fault::crash) EXPECT_NE(m.error.find("SIGSEGV"), std::string::npos) << m.error;
        if (fault == Fault::illegal_instruction)
            EXPECT_NE(m.error.find("SIGILL"), std::string::npos) << m.error;
        if (fault == Fault::compile_error)
            EXPECT_NE(m.error.find("amq_no_such_var"), std::string::npos) << m.error;
    }
}

TEST(Evaluation, AHangingCandidateTimesOut) {
    auto p = make_pipeline(bgemv_problem(64, 64, 1, 1), Halide::get_host_target());
    // The child compiles the candidate, then hangs in its check.
    const double limit = 3 * kCompileSlowdown;
    Evaluator ev(*p, EvalOptions{Halide::get_host_target(), limit});
    Candidate c;
    c.knobs = p->defaults();
    c.fault = Fault::hang;
    const Measurement m = ev.evaluate(c, TimingOptions{0.2, 3, 5, 0.05, 0.2});
    EXPECT_EQ(m.kind, ErrorKind::timeout) << m.error;
    EXPECT_NE(m.error.find("while verify"), std::string::npos) << m.error;
    EXPECT_LT(m.seconds, limit + 7);
}

TEST(Evaluation, EveryLayoutOfTheSpaceMatchesTheReference) {
    // Not multiples of any tile; 3 words of which the last is partial.
    auto p = make_pipeline(bgemv_problem(45, 150, 3, 2), Halide::get_host_target());
    Evaluator ev(*p, EvalOptions{Halide::get_host_target(), 30});
    std::vector<Candidate> cands;
    for (const std::string layout : {"tiled", "plane_major", "interleaved"})
        for (int tile : {4, 16}) {
            Candidate c;
            c.knobs = bgemv_knobs(layout, tile, tile == 4 ? 2 : 1, 64);
            p->prune(c.knobs);
            cands.push_back(c);
        }
    const auto ms = ev.evaluate_together(cands, TimingOptions{0.2, 3, 5, 0.05, 0.2});
    ASSERT_EQ(ms.size(), cands.size());
    for (size_t i = 0; i < ms.size(); ++i)
        EXPECT_TRUE(ms[i].ok()) << cands[i].str() << ": " << kind_name(ms[i].kind) << " "
                                << ms[i].error;
}

TEST(Evaluation, AutoschedulersRunInTheChildAndAreChecked) {
    auto p = make_pipeline(bgemv_problem(256, 640, 2, 2), Halide::get_host_target());
    Evaluator ev(*p, EvalOptions{Halide::get_host_target(), 60});
    CpuIdentity cpu = detect_cpu();
    for (const std::string &name : autoscheduler_names()) {
        const std::vector<Candidate> runs = autoscheduler_candidates(*p, name, cpu);
        // Every layout x parallelism x cache size; the first: the model file's layout.
        ASSERT_GE(runs.size(), p->autoscheduler_layouts().size()) << name;
        EXPECT_EQ(runs[0].knobs, Knobs({{"layout", "plane_major"}, {"tile", 1}}));
        EXPECT_EQ(runs[0].machine.parallelism, 1);
        EXPECT_FALSE(runs[0].check_edge_shape);  // estimates are for the real shape only
        const Measurement m = ev.evaluate(runs[0], TimingOptions{0.2, 3, 5, 0.05, 0.2});
        EXPECT_TRUE(m.ok()) << name << ": " << kind_name(m.kind) << " " << m.error;
        EXPECT_GT(m.kernel.median_us, 0) << name;
    }
    EXPECT_THROW(autoscheduler_plugin("Nope2020"), std::invalid_argument);
}

// ------------------------------------------------------------ a real tuning run

namespace {

// Short timings for the tuner's tests (they check what is written, not speed).
void quick_timings(TuneOptions &o) {
    o.screen_timing = {0.2, 3, 5, 0.05, 0.2};
    o.full_timing = {0.2, 3, 7, 0.05, 0.3};
    o.final_timing = {0.3, 5, 9, 0.05, 0.5};
}

}  // namespace

TEST(Tuner, SmallRunVerifiesWritesSchedulesAndResumes) {
    const std::string dir = temp_dir("tuner");
    TuneOptions o;
    o.problem = bgemv_problem(100, 130, 2, 3);
    o.budget_seconds = 60;
    o.max_trials = 4;
    o.records_path = dir + "/records.jsonl";
    o.schedules_path = dir + "/schedules/test-cpu.json";
    quick_timings(o);
    o.search.seed = 5;
    // The second candidate the search proposes crashes: it is recorded and the
    // search goes on.
    auto p = make_pipeline(o.problem, Halide::get_host_target());
    Search probe(
        p->space(), p->defaults(), [&](Knobs &k) { return p->prune(k); }, o.search);
    probe.next();
    const Knobs crashing = probe.next()->knobs;
    o.faults[knobs_key(crashing)] = Fault::crash;

    int events = 0;
    std::vector<std::string> warnings;
    TuneCallbacks cb;
    cb.on_trial = [&](const TrialEvent &e) {
        ++events;
        EXPECT_EQ(e.trials, events);
    };
    cb.warn = [&](const std::string &w) { warnings.push_back(w); };
    const TuneReport r = tune(o, cb);
    EXPECT_EQ(r.trials, 4);
    EXPECT_EQ(events, 4);
    EXPECT_EQ(r.failures, 1);
    EXPECT_EQ(r.failure_kinds.at("crash"), 1);
    EXPECT_NE(r.tuned_knobs, crashing);
    EXPECT_GT(r.default_us, 0);
    EXPECT_GT(r.tuned_us, 0);
    EXPECT_LE(r.tuned_us, r.default_us);  // never slower than the defaults
    EXPECT_TRUE(warnings.empty());

    // Records: a header, 4 search trials, the closing comparison.
    auto lines = read_lines(o.records_path);
    ASSERT_EQ(lines.size(), 6u);
    int crashes = 0;
    for (size_t i = 1; i < lines.size(); ++i) {
        const auto j = nlohmann::json::parse(lines[i]);
        EXPECT_EQ(j["pipeline"], "bgemv");
        EXPECT_EQ(j["shape"], "100x130");
        EXPECT_EQ(j["bits"], "W2A3");
        EXPECT_EQ(j["cpu"]["id"], r.cpu.id);
        EXPECT_EQ(j["halide"], r.halide_version);
        if (j["kind"] == "crash") {
            ++crashes;
            EXPECT_EQ(j["knobs"], crashing);
            EXPECT_NE(j["error"].get<std::string>().find("SIGSEGV"), std::string::npos);
        } else {
            EXPECT_EQ(j["kind"], "ok") << j.dump();
            EXPECT_GT(j["median_us"].get<double>(), 0);
        }
    }
    EXPECT_EQ(crashes, 1);
    EXPECT_EQ(nlohmann::json::parse(lines.back())["source"], "final");

    // The schedules file: says it is generated in its first line, holds the
    // winner in "pipelines" (the structure of defaults.json) and in "tuned".
    const auto sched = read_lines(o.schedules_path);
    ASSERT_FALSE(sched.empty());
    EXPECT_NE(sched[0].find("\"generated_by\": \"amq tune"), std::string::npos) << sched[0];
    std::ifstream sf(o.schedules_path);
    const auto doc = nlohmann::json::parse(sf);
    EXPECT_EQ(doc["format"], "amq-schedules");
    EXPECT_EQ(doc["pipelines"]["bgemv"], r.tuned_knobs);
    EXPECT_TRUE(doc["pipelines"].contains("quantize_act"));  // the defaults of the rest
    ASSERT_EQ(doc["tuned"].size(), 1u);
    EXPECT_EQ(doc["tuned"][0]["shape"], "100x130");
    EXPECT_EQ(doc["tuned"][0]["knobs"], r.tuned_knobs);
    EXPECT_EQ(doc["cpu"]["id"], r.cpu.id);

    // Resume: the 4 results are read back and not measured again.
    o.max_trials = 2;
    o.faults.clear();
    const TuneReport r2 = tune(o, {});
    EXPECT_EQ(r2.resumed, 4);
    EXPECT_EQ(r2.trials, 2);
    // Records: the first run's 6, 2 trials, the closing comparison: the tuned
    // knobs, then the build's common knobs (the schedules file's: the first
    // run's winner) when they are neither the defaults nor the tuned knobs,
    // which the timing of the trials decides.
    lines = read_lines(o.records_path);
    ASSERT_GE(lines.size(), 9u);
    ASSERT_LE(lines.size(), 10u);
    EXPECT_EQ(nlohmann::json::parse(lines[8])["source"], "final");
    EXPECT_EQ(r2.common_knobs, r.tuned_knobs);
    if (lines.size() == 10u) {
        const auto j = nlohmann::json::parse(lines[9]);
        EXPECT_EQ(j["source"], "final");
        EXPECT_EQ(j["knobs"], r.tuned_knobs);
        EXPECT_NE(r.tuned_knobs, r2.default_knobs);
        EXPECT_GT(r2.common_us, 0);
    }
    std::set<std::string> first_run;
    for (size_t i = 1; i <= 4; ++i) {
        const auto j = nlohmann::json::parse(lines[i]);
        first_run.insert(j["knobs"].dump() + "@" + j["rung"].dump());
    }
    for (size_t i = 6; i <= 7; ++i) {
        const auto j = nlohmann::json::parse(lines[i]);
        EXPECT_EQ(first_run.count(j["knobs"].dump() + "@" + j["rung"].dump()), 0u) << lines[i];
    }
    std::filesystem::remove_all(dir);
}

TEST(Tuner, SchedulesFileOfAnotherCpuIsNotOverwritten) {
    const std::string dir = temp_dir("other_cpu");
    const std::string path = dir + "/s.json";
    CpuIdentity a = detect_cpu(), b = a;
    b.id = "some-other-cpu";
    TunedEntry e{bgemv_problem(64, 64, 1, 1), hand_defaults("bgemv"), 1.0, 2.0, utc_now()};
    update_schedules_file(path, a, "14.0.0", "host", e);
    e.problem.rows = 128;
    update_schedules_file(path, a, "14.0.0", "host", e);  // a second entry
    try {
        update_schedules_file(path, b, "14.0.0", "host", e);
        ADD_FAILURE() << "overwrote another CPU's file";
    } catch (const std::runtime_error &err) {
        EXPECT_NE(std::string(err.what()).find("belongs to CPU"), std::string::npos) << err.what();
    }
    std::ifstream f(path);
    const auto doc = nlohmann::json::parse(f);
    EXPECT_EQ(doc["tuned"].size(), 2u);
    std::filesystem::remove_all(dir);
}

// amq tune --steps: "steps" entries replaced by problem, kept by the knob
// searches' updates, each with the build's choice.
TEST(Tuner, StepChoicesAreWrittenReplacedAndKept) {
    const std::string dir = temp_dir("step_choices");
    const std::string path = dir + "/s.json";
    const CpuIdentity cpu = detect_cpu();
    EXPECT_TRUE(step_separate_wins(1.0, 0.96));
    EXPECT_FALSE(step_separate_wins(1.0, 0.975));
    EXPECT_FALSE(step_separate_wins(1.0, 1.5));
    // A new file: the hand defaults and the steps.
    update_step_choices(path, cpu,
                        {{"lstm", "W2A2", 256, 1, "run", 2.0, 1.5, ""},
                         {"lstm", "W2A2", 256, 1, "step", 2.0, 1.99, ""},
                         {"gru", "W2A2", 64, 8, "run", 1.0, 1.2, ""}});
    auto read = [&] {
        std::ifstream f(path);
        return nlohmann::json::parse(f);
    };
    nlohmann::json doc = read();
    EXPECT_EQ(doc["format"], "amq-schedules");
    EXPECT_EQ(doc["pipelines"]["bgemv"], nlohmann::json(hand_defaults("bgemv")));
    ASSERT_EQ(doc["steps"].size(), 3u);
    auto find = [&](const std::string &cell, size_t hidden, const std::string &call) {
        for (const auto &e : doc["steps"])
            if (e["cell"] == cell && e["hidden"] == hidden && e["call"] == call) return e;
        return nlohmann::json();
    };
    EXPECT_EQ(find("lstm", 256, "run")["choice"], "separate");
    EXPECT_EQ(find("lstm", 256, "step")["choice"], "fused");  // within 3%
    EXPECT_EQ(find("gru", 64, "run")["choice"], "fused");
    EXPECT_EQ(find("gru", 64, "run")["batch"], 8);
    // The same problem again replaces its entry; the others stay.
    update_step_choices(path, cpu, {{"lstm", "W2A2", 256, 1, "run", 1.0, 1.5, ""}});
    doc = read();
    ASSERT_EQ(doc["steps"].size(), 3u);
    EXPECT_EQ(find("lstm", 256, "run")["choice"], "fused");
    EXPECT_EQ(find("lstm", 256, "run")["fused_us"], 1.0);
    // A knob search's update keeps them.
    update_schedules_file(path, cpu, "14.0.0", "host",
                          {bgemv_problem(64, 64, 1, 1), hand_defaults("bgemv"), 1.0, 2.0, utc_now()});
    doc = read();
    EXPECT_EQ(doc["tuned"].size(), 1u);
    EXPECT_EQ(doc["steps"].size(), 3u);
    // Times must be measured; another CPU's file is refused.
    EXPECT_THROW(update_step_choices(path, cpu, {{"gru", "W2A2", 64, 1, "run", 0.0, 1.0, ""}}),
                 std::invalid_argument);
    CpuIdentity other = cpu;
    other.id = "some-other-cpu";
    EXPECT_THROW(update_step_choices(path, other, {{"gru", "W2A2", 64, 1, "run", 1.0, 1.0, ""}}),
                 std::runtime_error);
    EXPECT_EQ(read()["steps"].size(), 3u);
    std::filesystem::remove_all(dir);
}

// The build's knob set: best over all tuned problems, not the best of one.
TEST(Tuner, BuildKnobsAreBestOverAllTunedProblems) {
    const Problem p1 = bgemv_problem(1024, 1024, 2, 2), p2 = bgemv_problem(4096, 1024, 3, 3);
    const Knobs a = bgemv_knobs("tiled", 32, 1, 64);  // best on p1, bad on p2
    const Knobs b = bgemv_knobs("tiled", 16, 2, 64);  // close to the best on both
    const Knobs c = bgemv_knobs("tiled", 8, 1, 64);   // measured on p1 only
    std::vector<Record> records;
    auto add = [&](const Problem &p, const Knobs &k, int rung, double ratio) {
        Record r = sample_record("ok", 10.0 * ratio);
        r.problem = p;
        r.candidate.knobs = k;
        r.rung = rung;
        r.measurement.baseline = {10.0, 0.01, 11};
        records.push_back(r);
    };
    add(p1, a, 0, 0.80);
    add(p1, a, 1, 0.90);  // the highest rung counts: 0.90
    add(p1, b, 0, 0.95);
    add(p1, c, 0, 0.50);  // the best of p1, but never measured on p2
    add(p2, a, 0, 1.50);
    add(p2, b, 0, 0.90);
    Record failed = sample_record("crash", 0);
    failed.problem = p2;
    failed.candidate.knobs = c;
    records.push_back(failed);  // a failure is not a measurement
    const CpuIdentity cpu = records[0].cpu;
    const auto chosen =
        common_knobs(records, {p1, p2}, "bgemv", cpu, records[0].halide_version, records[0].target);
    ASSERT_TRUE(chosen.has_value());
    EXPECT_EQ(knobs_key(chosen->knobs), knobs_key(b));
    EXPECT_EQ(chosen->problems, 2);
    // best of p1 is c at 0.50, of p2 is b at 0.90: b scores sqrt(0.95/0.50 * 1).
    EXPECT_NEAR(chosen->geomean, std::sqrt(0.95 / 0.50), 1e-9);
    EXPECT_NEAR(chosen->worst, 0.95 / 0.50, 1e-9);
    // Records of another CPU do not count; one problem alone gives no choice.
    EXPECT_FALSE(
        common_knobs(records, {p1, p2}, "bgemv", CpuIdentity{}, "14.0.0", records[0].target)
            .has_value());
    EXPECT_FALSE(
        common_knobs(records, {p1}, "bgemv", cpu, records[0].halide_version, records[0].target)
            .has_value());

    // update_schedules_file puts it in "pipelines" and says why in "build_choice".
    const std::string dir = temp_dir("build_choice");
    const std::string path = dir + "/s.json";
    update_schedules_file(path, cpu, records[0].halide_version, records[0].target,
                          {p1, a, 8.0, 10.0, utc_now()}, records);
    update_schedules_file(path, cpu, records[0].halide_version, records[0].target,
                          {p2, b, 9.0, 10.0, utc_now()}, records);
    std::ifstream f(path);
    const auto doc = nlohmann::json::parse(f);
    EXPECT_EQ(knobs_key(doc["pipelines"]["bgemv"]), knobs_key(b));
    EXPECT_EQ(doc["build_choice"]["bgemv"]["problems"], 2);
    std::filesystem::remove_all(dir);
}

// ------------------------------------------------------- ISA variants (--isa)

namespace {

const char *kTopFeatures =
    "x86-64-linux-avx-avx2-avx512-avx512_cannonlake-avx512_sapphirerapids-avx512_skylake-f16c-"
    "fma-sse41";

}  // namespace

TEST(IsaVariants, TheBuildsVariantsMostCapableFirst) {
    std::vector<std::string> names;
    for (const IsaVariant &v : isa_variants()) names.push_back(v.name);
    EXPECT_EQ(names, (std::vector<std::string>{"avx512", "avx2", "sse41"}));
}

TEST(IsaVariants, TheJitTargetIsTheHostCappedToTheVariant) {
    const Halide::Target host(kTopFeatures), avx2_host("x86-64-linux-avx-avx2-f16c-fma-sse41"),
        old_host("x86-64-linux-sse41");
    EXPECT_EQ(isa_target(host, "avx512"), host);
    EXPECT_EQ(isa_target(host, "avx2"), avx2_host);
    EXPECT_EQ(isa_target(host, "sse41"), old_host);
    EXPECT_EQ(isa_target(avx2_host, "sse41"), old_host);
    const Halide::Target capped = isa_target(host, "avx2");
    for (auto f : {Halide::Target::AVX512, Halide::Target::AVX512_Skylake,
                   Halide::Target::AVX512_Cannonlake, Halide::Target::AVX512_SapphireRapids})
        EXPECT_FALSE(capped.has_feature(f)) << Halide::Target::feature_to_name(f);
    EXPECT_TRUE(capped.has_feature(Halide::Target::AVX2));
    EXPECT_FALSE(isa_target(host, "sse41").has_feature(Halide::Target::AVX));
    // The host's best: what the runtime picks there.
    EXPECT_EQ(best_isa(host), "avx512");
    EXPECT_EQ(best_isa(avx2_host), "avx2");
    EXPECT_EQ(best_isa(old_host), "sse41");
    EXPECT_EQ(best_isa(Halide::Target("x86-64-linux-avx-avx2-avx512-f16c-fma-sse41")), "avx2");
    EXPECT_EQ(best_isa(Halide::Target("x86-64-linux-avx-avx2-fma-sse41")), "sse41");  // no f16c
    // A variant the CPU cannot run, or no variant at all, is refused with the reason.
    try {
        isa_target(avx2_host, "avx512");
        ADD_FAILURE() << "capped up to AVX-512 on an AVX2 CPU";
    } catch (const std::invalid_argument &e) {
        EXPECT_NE(std::string(e.what()).find("lacks its feature avx512"), std::string::npos)
            << e.what();
    }
    try {
        isa_target(host, "neon");
        ADD_FAILURE() << "accepted --isa neon";
    } catch (const std::invalid_argument &e) {
        EXPECT_NE(std::string(e.what()).find("'neon': not a variant of the kernels (avx512, avx2, "
                                             "sse41)"),
                  std::string::npos)
            << e.what();
    }
}

// The capped target reaches the knob rules: SSE4.1 has 2 u64 lanes in 16
// registers, so a 16-row tile of W2A2 counters (32 registers) is pruned there
// and not for AVX2 (16) or AVX-512 (8 of 32).
TEST(IsaVariants, PruningFollowsTheCappedTarget) {
    const Halide::Target host(kTopFeatures);
    const Problem p = bgemv_problem(4096, 1024, 2, 2);
    for (const char *isa : {"avx512", "avx2", "sse41"}) {
        auto pipeline = make_pipeline(p, isa_target(host, isa));
        Knobs k = bgemv_knobs("tiled", 16, 1, 64);
        const std::string why = pipeline->prune(k);
        if (std::string(isa) == "sse41")
            EXPECT_NE(why.find("vector registers (the target has 16)"), std::string::npos) << why;
        else
            EXPECT_EQ(why, "") << isa;
    }
}

TEST(IsaVariants, SchedulesFileKeepsEachVariantsKnobs) {
    const std::string dir = temp_dir("sched_isa");
    const std::string path = dir + "/s.json";
    const CpuIdentity cpu = detect_cpu();
    const Problem p1 = bgemv_problem(1024, 1024, 2, 2), p2 = bgemv_problem(4096, 1024, 2, 2);
    // A lower variant keeps the top's runtime knobs (layout, tile): avx2 is
    // tuned first against the hand defaults' tile 8, then the top moves to 16.
    const Knobs top = bgemv_knobs("tiled", 16, 1, 64), avx2 = bgemv_knobs("tiled", 8, 2, 64),
                avx2_big = bgemv_knobs("tiled", 16, 4, 64), sse = bgemv_knobs("tiled", 16, 1, 32);
    const std::string t512 = kTopFeatures, t2 = "x86-64-linux-avx-avx2-f16c-fma-sse41",
                      t41 = "x86-64-linux-sse41";
    // A lower variant first: the file starts with the hand defaults at the top.
    update_schedules_file(path, cpu, "14.0.0", t2, {p1, avx2, 3, 4, utc_now()}, {}, "avx2");
    {
        std::ifstream f(path);
        EXPECT_EQ(nlohmann::json::parse(f)["isa"]["avx2"]["pipelines"]["bgemv"], avx2);
    }
    update_schedules_file(path, cpu, "14.0.0", t512, {p1, top, 2, 3, utc_now()}, {}, "avx512");
    update_schedules_file(path, cpu, "14.0.0", t41, {p1, sse, 5, 6, utc_now()}, {}, "sse41");
    update_schedules_file(path, cpu, "14.0.0", t2, {p2, avx2_big, 9, 10, utc_now()}, {}, "avx2");
    update_schedules_file(path, cpu, "14.0.0", t2, {p2, avx2_big, 8, 10, utc_now()}, {}, "avx2");
    std::ifstream f(path);
    const auto doc = nlohmann::json::parse(f);
    // The top (AVX-512) variant as before: every pipeline, the tuned one's knobs.
    EXPECT_EQ(doc["target"], t512);
    EXPECT_EQ(doc["pipelines"]["bgemv"], top);
    EXPECT_EQ(doc["pipelines"]["lstm_cell"], hand_defaults("lstm_cell"));
    ASSERT_EQ(doc["tuned"].size(), 1u);
    // Each lower variant: only its tuned pipelines (the rest build as the top),
    // and only entries with the top's tile: the tile-8 entry of p1 is gone.
    ASSERT_TRUE(doc.contains("isa"));
    const auto &a2 = doc["isa"]["avx2"];
    EXPECT_EQ(a2["target"], t2);
    EXPECT_EQ(a2["pipelines"], nlohmann::json({{"bgemv", avx2_big}}));
    ASSERT_EQ(a2["tuned"].size(), 1u);  // p2 tuned twice: replaced, not added
    EXPECT_EQ(a2["tuned"][0]["tuned_us"], 8);
    EXPECT_EQ(a2["tuned"][0]["knobs"]["tile"], 16);
    EXPECT_EQ(doc["isa"]["sse41"]["pipelines"], nlohmann::json({{"bgemv", sse}}));
    EXPECT_EQ(doc["isa"].size(), 2u);
    std::filesystem::remove_all(dir);
}

TEST(IsaVariants, RecordsSayWhichVariantTheyMeasured) {
    Record a = sample_record("ok", 10.0);
    a.isa = "avx2";
    const auto j = record_to_json(a);
    EXPECT_EQ(j["isa"], "avx2");
    const Record back = record_from_json(j);
    EXPECT_EQ(back.isa, "avx2");
    Record b = a;
    b.isa = "sse41";
    EXPECT_FALSE(a.same_setting(b));  // another variant's times do not resume
    EXPECT_TRUE(a.same_setting(back));
}

// Options of a short tuning run of bgemv 300x200 W2A2 (`isa`: "" = the host's
// best) with records and a schedules file in `dir`.
namespace {

TuneOptions small_run(const std::string &dir, const std::string &isa, int trials) {
    TuneOptions o;
    o.problem = bgemv_problem(300, 200, 2, 2);
    o.isa = isa;
    o.budget_seconds = 60;
    o.max_trials = trials;
    o.records_path = dir + "/records.jsonl";
    o.schedules_path = dir + "/s.json";
    quick_timings(o);
    return o;
}

}  // namespace

// A small run for the SSE4.1 variant: compiled for the capped target, recorded
// as sse41, never slower than that variant's defaults, written to its section.
TEST(IsaVariants, TuningALowerVariantIsNeverSlowerThanItsDefaults) {
    const std::string dir = temp_dir("tune_isa");
    TuneOptions o = small_run(dir, "sse41", 3);
    const TuneReport r = tune(o, {});
    EXPECT_EQ(r.isa, "sse41");
    EXPECT_EQ(r.target, "x86-64-linux-sse41");
    EXPECT_GT(r.default_us, 0);
    EXPECT_LE(r.tuned_us, r.default_us);
    EXPECT_EQ(r.to_json()["isa"], "sse41");
    const auto lines = read_lines(o.records_path);
    ASSERT_GE(lines.size(), 2u);
    for (size_t i = 1; i < lines.size(); ++i) {
        const auto j = nlohmann::json::parse(lines[i]);
        EXPECT_EQ(j["isa"], "sse41");
        EXPECT_EQ(j["target"], "x86-64-linux-sse41");
    }
    std::ifstream f(o.schedules_path);
    const auto doc = nlohmann::json::parse(f);
    EXPECT_EQ(doc["isa"]["sse41"]["pipelines"]["bgemv"], r.tuned_knobs);
    EXPECT_EQ(doc["isa"]["sse41"]["tuned"][0]["tuned_us"].get<double>(),
              std::round(r.tuned_us * 1000) / 1000);
    EXPECT_EQ(doc["pipelines"]["bgemv"], hand_defaults("bgemv"));  // the top: untouched
    EXPECT_TRUE(doc["tuned"].empty());
    std::filesystem::remove_all(dir);
}

// A lower variant runs on the weights packed for the top one: its search and its
// defaults hold the top's tile and layout (the manifest's "runtime" knobs).
TEST(IsaVariants, ALowerVariantHoldsTheTopsRuntimeKnobs) {
    const std::string dir = temp_dir("tune_isa_held");
    TuneOptions o = small_run(dir, "sse41", 4);
    update_schedules_file(o.schedules_path, detect_cpu(), "14.0.0", kTopFeatures,
                          {bgemv_problem(64, 64, 2, 2), bgemv_knobs("plane_major", 32, 1, 64), 1,
                           2, utc_now()});
    EXPECT_EQ(top_variant_knobs(o.schedules_path, "bgemv")["tile"], 32);
    const TuneReport r = tune(o, {});
    EXPECT_EQ(r.default_knobs["tile"], 32);
    EXPECT_EQ(r.default_knobs["layout"], "plane_major");
    EXPECT_EQ(r.tuned_knobs["tile"], 32);
    EXPECT_EQ(r.tuned_knobs["layout"], "plane_major");
    const auto lines = read_lines(o.records_path);
    ASSERT_GE(lines.size(), 2u);
    for (const std::string &line : lines) {
        const auto j = nlohmann::json::parse(line);
        if (!j.contains("knobs") || j["isa"] != "sse41") continue;  // the header line
        EXPECT_EQ(j["knobs"]["tile"], 32) << line;
        EXPECT_EQ(j["knobs"]["layout"], "plane_major") << line;
    }
    std::filesystem::remove_all(dir);
}

// The build's common knobs are timed in the closing comparison beside the
// winner, and that time (same run) goes into the schedules file: a per-problem
// variant is built only when the winner beats it there.
TEST(Tuner, TimesTheBuildsCommonKnobsBesideTheWinner) {
    const std::string dir = temp_dir("tune_common");
    TuneOptions o = small_run(dir, "", 3);
    const Knobs common = bgemv_knobs("tiled", 4, 2, 64);
    update_schedules_file(o.schedules_path, detect_cpu(), "14.0.0", kTopFeatures,
                          {bgemv_problem(64, 64, 2, 2), common, 1, 2, utc_now()});
    const TuneReport r = tune(o, {});
    EXPECT_EQ(r.common_knobs, common);
    EXPECT_GT(r.common_us, 0);
    if (r.tuned_knobs == common) EXPECT_EQ(r.common_us, r.tuned_us);
    std::ifstream f(o.schedules_path);
    const auto doc = nlohmann::json::parse(f);
    bool found = false;
    for (const auto &e : doc["tuned"])
        if (e["rows"] == 300) {
            found = true;
            EXPECT_DOUBLE_EQ(e["common_us"].get<double>(), std::round(r.common_us * 1000) / 1000);
        }
    EXPECT_TRUE(found);
    EXPECT_EQ(r.to_json()["common_knobs"].dump(), common.dump());
    std::filesystem::remove_all(dir);
}

// ------------------------------------------- the other pipelines (bgemm, f32, cells)

namespace {

Problem f32_problem(size_t rows, size_t cols, int threads = 1) {
    Problem p;
    p.pipeline = "f32_gemv";
    p.rows = rows;
    p.cols = cols;
    p.threads = threads;
    return p;
}

Problem cell_problem(const std::string &name, size_t hidden, size_t batch, int threads = 1) {
    Problem p;
    p.pipeline = name;
    p.rows = hidden;
    p.batch = batch;
    p.threads = threads;
    return p;
}

Problem bgemm_problem(size_t rows, size_t cols, size_t batch, int k_w, int k_a,
                      const std::string &layout = "tiled", int tile = 8, int threads = 1) {
    Problem p = bgemv_problem(rows, cols, k_w, k_a, threads);
    p.pipeline = "bgemm";
    p.batch = batch;
    p.layout = layout;
    p.tile = tile;
    return p;
}

Knobs bgemm_knobs(int unroll, int parallel_tiles, int accumulators, int max_batch_tile) {
    return {{"unroll_words", unroll},
            {"parallel_tiles", parallel_tiles},
            {"accumulators", accumulators},
            {"max_batch_tile", max_batch_tile}};
}

// The hand defaults and the same knobs with a forced wrong result, compiled,
// checked (edge shape first) and timed in one child.
void expect_defaults_ok_and_wrong_result_caught(const Problem &problem,
                                                const std::string &edge_where) {
    SCOPED_TRACE(problem.str());
    auto p = make_pipeline(problem, Halide::get_host_target());
    Evaluator ev(*p, EvalOptions{Halide::get_host_target(), 60});
    Candidate good, bad;
    good.knobs = bad.knobs = p->defaults();
    bad.fault = Fault::wrong_result;
    const auto ms = ev.evaluate_together({good, bad}, TimingOptions{0.2, 3, 5, 0.05, 0.2});
    ASSERT_EQ(ms.size(), 2u);
    EXPECT_TRUE(ms[0].ok()) << kind_name(ms[0].kind) << ": " << ms[0].error;
    EXPECT_GT(ms[0].kernel.median_us, 0);
    EXPECT_GT(ms[0].baseline.median_us, 0);
    EXPECT_EQ(ms[1].kind, ErrorKind::wrong_result) << ms[1].error;
    // Caught on the edge shape, the first check.
    EXPECT_NE(ms[1].error.find("wrong at " + edge_where), std::string::npos) << ms[1].error;
}

}  // namespace

TEST(KnobSpace, EveryTunablePipelineHasASpaceAndDefaults) {
    for (const std::string &name : tunable_pipelines()) {
        const KnobSpace &s = builtin_space(name);
        EXPECT_EQ(s.pipeline(), name);
        // The hand defaults are a point of the space (so the search starts there).
        EXPECT_EQ(s.check(hand_defaults(name)), "") << name;
    }
    EXPECT_EQ(builtin_space("f32_gemv").size(), 4u * 4u * 6u * 5u);
    EXPECT_EQ(builtin_space("lstm_cell").size(), 5u * 6u);
    EXPECT_EQ(builtin_space("bgemm").size(), 4u * 7u * 5u * 6u);
    EXPECT_EQ(builtin_space("quantize_act").size(), 3u * 4u);
}

TEST(OtherPruning, F32GemvRules) {
    auto reason = [](const Problem &pr, const Halide::Target &t, Knobs k) {
        return make_pipeline(pr, t)->prune(k);
    };
    auto knobs = [](int panel, int v, int panels, int pr) {
        return Knobs{{"panel", panel}, {"vector", v}, {"panels", panels}, {"parallel_rows", pr}};
    };
    // One thread: the task size cannot matter.
    auto p = make_pipeline(f32_problem(4096, 1024), kAvx512);
    Knobs a = knobs(16, 16, 2, 64), b = knobs(16, 16, 2, 1024);
    EXPECT_EQ(p->prune(a), "");
    EXPECT_EQ(p->prune(b), "");
    EXPECT_EQ(a, b);
    EXPECT_NE(reason(f32_problem(64, 20), kAvx512, knobs(8, 16, 1, 256)).find("does not divide panel 8"),
              std::string::npos);
    // 33 rows are 3 panels of 16 (the last padded): 4 panels at once is more.
    EXPECT_EQ(reason(f32_problem(33, 64), kAvx512, knobs(16, 16, 3, 256)), "");
    EXPECT_NE(reason(f32_problem(33, 64), kAvx512, knobs(16, 16, 4, 256)).find("exceeds the 3 panel"),
              std::string::npos);
    // AVX2: a panel of 64 is 8 ymm, x 2 panels + x(c) = 17 registers of 16.
    EXPECT_NE(reason(f32_problem(640, 64), kAvx2, knobs(64, 8, 2, 256)).find("need 17 vector"),
              std::string::npos);
    EXPECT_EQ(reason(f32_problem(640, 64), kAvx512, knobs(64, 8, 2, 256)), "");
    EXPECT_NE(reason(f32_problem(640, 64), kAvx512, knobs(64, 16, 8, 256)).find("need 33 vector"),
              std::string::npos);
    EXPECT_NE(reason(f32_problem(200, 64, 2), kAvx512, knobs(16, 16, 2, 256)).find("one task"),
              std::string::npos);
    EXPECT_THROW(make_pipeline(f32_problem(0, 64), kAvx512), std::invalid_argument);
    Problem with_bits = f32_problem(64, 64);
    with_bits.k_w = 2;
    EXPECT_THROW(make_pipeline(with_bits, kAvx512), std::invalid_argument);
}

TEST(OtherPruning, CellRules) {
    auto knobs = [](int v, int pb) { return Knobs{{"vector", v}, {"parallel_batch", pb}}; };
    for (const std::string name : {"lstm_cell", "gru_cell"}) {
        auto one = make_pipeline(cell_problem(name, 1024, 1), kAvx512);
        Knobs k = knobs(16, 2);
        EXPECT_NE(one->prune(k).find("with one thread"), std::string::npos) << name;
        k = knobs(16, 0);
        EXPECT_EQ(one->prune(k), "") << name;
        // 20 units round up to 32 f32 lanes of AVX-512: 64 lanes are too wide.
        auto narrow = make_pipeline(cell_problem(name, 20, 1), kAvx512);
        k = knobs(64, 0);
        EXPECT_NE(narrow->prune(k).find("exceeds the 20 hidden"), std::string::npos) << name;
        k = knobs(32, 0);
        EXPECT_EQ(narrow->prune(k), "") << name;
        auto par = make_pipeline(cell_problem(name, 256, 8, 2), kAvx512);
        k = knobs(16, 8);
        EXPECT_NE(par->prune(k).find("one task"), std::string::npos) << name;
        k = knobs(16, 4);
        EXPECT_EQ(par->prune(k), "") << name;
        Problem with_cols = cell_problem(name, 64, 1);
        with_cols.cols = 5;
        EXPECT_THROW(make_pipeline(with_cols, kAvx512), std::invalid_argument) << name;
        EXPECT_THROW(make_pipeline(cell_problem(name, 0, 1), kAvx512), std::invalid_argument);
    }
}

TEST(OtherPruning, BgemmRules) {
    // W2A2, 64 items: the batch tile is what the knobs give (amq/batch_tile.h);
    // equal tiles are one candidate, written with the defaults' values.
    auto p = make_pipeline(bgemm_problem(4096, 1024, 64, 2, 2), kAvx512);
    Knobs a = bgemm_knobs(1, 4, 16, 8), b = bgemm_knobs(1, 256, 32, 4);  // both: tile 4
    EXPECT_EQ(p->prune(a), "");
    EXPECT_EQ(p->prune(b), "");
    EXPECT_EQ(a, b);
    const Knobs d = hand_defaults("bgemm");
    EXPECT_EQ(a["accumulators"], d["accumulators"]);
    EXPECT_EQ(a["parallel_tiles"], d["parallel_tiles"]);
    auto *bp = dynamic_cast<TunablePipeline *>(p.get());
    ASSERT_NE(bp, nullptr);
    // 8 items of tile 16 W2A2: 2 x 4 x 8 = 64 zmm counters.
    auto wide = make_pipeline(bgemm_problem(4096, 1024, 64, 2, 2, "tiled", 16), kAvx512);
    Knobs k = bgemm_knobs(1, 64, 32, 8);
    EXPECT_NE(wide->prune(k).find("need 64 vector registers"), std::string::npos) << wide->prune(k);
    k = bgemm_knobs(8, 64, 24, 2);
    EXPECT_EQ(wide->prune(k), "");
    auto small = make_pipeline(bgemm_problem(64, 130, 4, 1, 1), kAvx512);
    k = bgemm_knobs(4, 64, 24, 6);
    EXPECT_NE(small->prune(k).find("unroll_words 4 exceeds the 3 word"), std::string::npos);
    // Refused: one vector (that is bgemv), no weight layout, a layout that is none.
    EXPECT_THROW(make_pipeline(bgemm_problem(64, 64, 1, 2, 2), kAvx512), std::invalid_argument);
    EXPECT_THROW(make_pipeline(bgemm_problem(64, 64, 4, 2, 2, ""), kAvx512), std::invalid_argument);
    EXPECT_THROW(make_pipeline(bgemm_problem(64, 64, 4, 2, 2, "diagonal"), kAvx512),
                 std::invalid_argument);
    // bgemv refuses a batch.
    Problem v = bgemv_problem(64, 64, 2, 2);
    v.batch = 4;
    EXPECT_THROW(make_pipeline(v, kAvx512), std::invalid_argument);
}

TEST(OtherPipelines, F32GemvDefaultsVerifyAndAWrongResultIsCaught) {
    expect_defaults_ok_and_wrong_result_caught(f32_problem(300, 515), "77x130");
}

TEST(OtherPipelines, LstmCellDefaultsVerifyAndAWrongResultIsCaught) {
    expect_defaults_ok_and_wrong_result_caught(cell_problem("lstm_cell", 129, 2), "77x3");
}

TEST(OtherPipelines, GruCellDefaultsVerifyAndAWrongResultIsCaught) {
    expect_defaults_ok_and_wrong_result_caught(cell_problem("gru_cell", 129, 1), "77x3");
}

TEST(OtherPipelines, BgemmDefaultsVerifyAndAWrongResultIsCaught) {
    // W2A3 with the defaults: at most 4 items per batch tile; 13 items take
    // tiles of 2 (amq/batch_tile.h), so the edge batch is 5.
    expect_defaults_ok_and_wrong_result_caught(bgemm_problem(100, 200, 13, 2, 3), "77x130x5");
}

TEST(OtherPipelines, QuantizeActDefaultsVerifyAndAWrongResultIsCaught) {
    Problem p;
    p.pipeline = "quantize_act";
    p.rows = 1;
    p.cols = 1000;
    p.k_a = 3;
    p.iters = 2;
    expect_defaults_ok_and_wrong_result_caught(p, "130 a3");
    // The smallest and largest lane counts of the space, greedy (T = 0), on the edge length.
    p.iters = 0;
    p.k_a = 2;
    auto qa = make_pipeline(p, Halide::get_host_target());
    Evaluator ev(*qa, EvalOptions{Halide::get_host_target(), 60});
    std::vector<Candidate> cands;
    for (int lanes : {4, 16}) {  // the ends of the space
        Candidate c;
        c.knobs = {{"lanes", lanes}, {"pack_vector", 64}};
        EXPECT_EQ(qa->prune(c.knobs), "");
        cands.push_back(c);
    }
    // Past the 32 partial sums of a pass: not a schedule of the algorithm.
    Knobs wide = {{"lanes", 64}, {"pack_vector", 8}};
    EXPECT_NE(qa->prune(wide).find("lanes = 64"), std::string::npos);
    for (const auto &m : ev.evaluate_together(cands, TimingOptions{0.2, 3, 5, 0.05, 0.2}))
        EXPECT_TRUE(m.ok()) << kind_name(m.kind) << " " << m.error;
    // 100 values are 16 bytes a plane: a pack_vector of 32 is skipped.
    p.cols = 100;
    Knobs k = {{"lanes", 8}, {"pack_vector", 32}};
    EXPECT_NE(make_pipeline(p, kAvx512)->prune(k).find("exceeds the 16 bytes"), std::string::npos);
    p.iters = 4;
    EXPECT_THROW(make_pipeline(p, kAvx512), std::invalid_argument);
}

TEST(OtherPipelines, EveryCandidateOfTheSmallSpacesMatchesTheReference) {
    // Every vector width of the cells, every panel of f32_gemv, and bgemm at several
    // batch tiles in the tiled and plane-major layouts, on edge shapes.
    const Halide::Target host = Halide::get_host_target();
    struct Case {
        Problem problem;
        std::vector<Knobs> knobs;
    };
    std::vector<Case> cases;
    Case lstm{cell_problem("lstm_cell", 70, 3), {}};
    for (int v : {4, 8, 32, 64}) lstm.knobs.push_back({{"vector", v}, {"parallel_batch", 0}});
    cases.push_back(lstm);
    Case gru{cell_problem("gru_cell", 45, 3, 2), {}};
    gru.knobs.push_back({{"vector", 8}, {"parallel_batch", 1}});
    gru.knobs.push_back({{"vector", 32}, {"parallel_batch", 2}});
    cases.push_back(gru);
    Case f32{f32_problem(150, 45, 2), {}};
    // Every panel; 150 rows are no multiple of any, nor of the groups of panels
    // (a guarded last group), and the tasks of 64 rows round to whole groups.
    f32.knobs.push_back({{"panel", 8}, {"vector", 4}, {"panels", 3}, {"parallel_rows", 64}});
    f32.knobs.push_back({{"panel", 16}, {"vector", 8}, {"panels", 4}, {"parallel_rows", 64}});
    f32.knobs.push_back({{"panel", 32}, {"vector", 32}, {"panels", 1}, {"parallel_rows", 64}});
    f32.knobs.push_back({{"panel", 64}, {"vector", 16}, {"panels", 2}, {"parallel_rows", 64}});
    cases.push_back(f32);
    for (const std::string layout : {"tiled", "plane_major"}) {
        Case bg{bgemm_problem(45, 150, 9, 2, 2, layout, 4, 2), {}};
        bg.knobs.push_back(bgemm_knobs(2, 4, 8, 8));   // 2 items per tile
        bg.knobs.push_back(bgemm_knobs(1, 4, 24, 3));  // 3
        bg.knobs.push_back(bgemm_knobs(1, 4, 8, 1));   // 1
        cases.push_back(bg);
    }
    for (auto &c : cases) {
        auto p = make_pipeline(c.problem, host);
        Evaluator ev(*p, EvalOptions{host, 60});
        std::vector<Candidate> cands;
        for (auto &k : c.knobs) {
            Candidate cand;
            cand.knobs = k;
            EXPECT_EQ(p->prune(cand.knobs), "") << c.problem.str() << " " << knobs_str(k);
            cands.push_back(cand);
        }
        const auto ms = ev.evaluate_together(cands, TimingOptions{0.2, 3, 5, 0.05, 0.2});
        for (size_t i = 0; i < ms.size(); ++i)
            EXPECT_TRUE(ms[i].ok()) << c.problem.str() << " " << cands[i].str() << ": "
                                    << kind_name(ms[i].kind) << " " << ms[i].error;
    }
}

// ------------------------------------------------------- problems in the files

TEST(Records, NewProblemFieldsRoundTripAndOldLinesStillRead) {
    // A line written before batch / iters / weight_layout existed.
    const std::string old_line =
        R"({"format_version":1,"time":"2026-11-23T12:49:34Z","cpu":{"id":"amd-epyc-f26m2","vendor":"AMD","name":"AMD Oxide Virtual Turin-like","family":26,"model":2,"features":["avx2"],"l1d_bytes":49152,"l2_bytes":1048576,"l3_bytes":532676608},"halide":"14.0.0","target":"x86-64-linux-avx2","pipeline":"bgemv","shape":"4096x1024","rows":4096,"cols":1024,"bits":"2x2","k_w":2,"k_a":2,"threads":1,"source":"search","rung":0,"knobs":{"layout":"tiled","parallel_tiles":64,"tile":8,"unroll_words":1},"autoscheduler":null,"machine":null,"kind":"ok","error":"","median_us":16.6,"spread":0.42,"rounds":6,"baseline_us":15.28,"baseline_spread":0.12,"ratio":1.086,"compile_ms":335.1,"seconds":0.4})";
    const Record old = record_from_json(nlohmann::json::parse(old_line));
    EXPECT_EQ(old.isa, "avx512");  // before records had "isa": the top variant
    EXPECT_EQ(old.problem, bgemv_problem(4096, 1024, 2, 2));
    EXPECT_EQ(old.problem.batch, 1u);
    // Written again, it keeps its problem and says so in the new fields too.
    const auto again = record_to_json(old);
    EXPECT_EQ(again["shape"], "4096x1024");
    EXPECT_EQ(again["batch"], 1);
    EXPECT_TRUE(again["weight_layout"].is_null());

    const std::string dir = temp_dir("records_new");
    RecordFile f(dir + "/r.jsonl");
    Record a = sample_record("ok", 10.0);
    a.problem = bgemm_problem(516, 100, 64, 2, 3, "tiled", 16);
    a.candidate.knobs = bgemm_knobs(2, 64, 24, 6);
    Record b = sample_record("ok", 3.0);
    b.problem = cell_problem("gru_cell", 129, 4);
    b.candidate.knobs = {{"vector", 16}, {"parallel_batch", 0}};
    f.append(a);
    f.append(b);
    const auto got = f.load([&](const std::string &w) { ADD_FAILURE() << w; });
    ASSERT_EQ(got.size(), 2u);
    EXPECT_EQ(got[0].problem, a.problem);
    EXPECT_EQ(got[1].problem, b.problem);
    EXPECT_FALSE(got[0].same_setting(got[1]));
    const auto lines = read_lines(f.path());
    const auto ja = nlohmann::json::parse(lines[1]), jb = nlohmann::json::parse(lines[2]);
    EXPECT_EQ(ja["shape"], "516x100x64");
    EXPECT_EQ(ja["bits"], "W2A3");
    EXPECT_EQ(ja["weight_layout"], nlohmann::json({{"layout", "tiled"}, {"tile", 16}}));
    EXPECT_EQ(jb["shape"], "129x4");
    EXPECT_EQ(jb["bits"], "f32");
    // A different weight layout is another setting: its records do not resume.
    Record c = a;
    c.problem.tile = 8;
    EXPECT_FALSE(a.same_setting(c));
    std::filesystem::remove_all(dir);
}

TEST(Tuner, SchedulesPipelinesTakeEachPipelinesEntryWithTheMostWork) {
    const std::string dir = temp_dir("sched_multi");
    const std::string path = dir + "/s.json";
    const CpuIdentity cpu = detect_cpu();
    const Knobs small_bgemm = bgemm_knobs(2, 64, 24, 6), big_bgemm = bgemm_knobs(4, 64, 16, 4);
    const Knobs cell = {{"vector", 32}, {"parallel_batch", 0}};
    update_schedules_file(path, cpu, "14.0.0", "host",
                          {bgemm_problem(516, 129, 64, 2, 3), small_bgemm, 1, 2, utc_now()});
    update_schedules_file(path, cpu, "14.0.0", "host",
                          {bgemm_problem(516, 129, 128, 2, 3), big_bgemm, 1, 2, utc_now()});
    update_schedules_file(path, cpu, "14.0.0", "host",
                          {cell_problem("lstm_cell", 129, 1), cell, 1, 2, utc_now()});
    std::ifstream f(path);
    const auto doc = nlohmann::json::parse(f);
    EXPECT_EQ(doc["tuned"].size(), 3u);
    EXPECT_EQ(doc["pipelines"]["bgemm"], big_bgemm);  // 128 items is more work than 64
    EXPECT_EQ(doc["pipelines"]["lstm_cell"], cell);
    EXPECT_EQ(doc["pipelines"]["gru_cell"], hand_defaults("gru_cell"));
    EXPECT_EQ(doc["pipelines"]["bgemv"], hand_defaults("bgemv"));
    std::filesystem::remove_all(dir);
}

// -------------------------------------------------------- tuning for a model

namespace {

// A quantized 2-layer LSTM (input 100, hidden 129, W2A3, alternating T = 2)
// as far as the problem derivation looks: shape, bits, which matrices are
// quantized.
// Marks every recurrent matrix of m as quantized with 2 weight bits (empty planes:
// the problem derivation reads only the sizes).
void quantize_rnn_matrices(amq::ModelFile &m) {
    m.quant.clear();
    for (const auto &name : amq::rnn_matrix_names(m.shape)) {
        auto [rows, cols] = amq::matrix_dims(m.shape, name);
        amq::QuantTensor q;
        q.k = 2;
        q.rows = rows;
        q.cols = cols;
        m.quant[name] = q;
    }
}

amq::ModelFile lstm2_model() {
    amq::ModelFile m;
    m.shape.arch = amq::Arch::lstm;
    m.shape.layers = 2;
    m.shape.input_size = 100;
    m.shape.hidden_size = 129;
    m.k_w = 2;
    m.k_a = 3;
    m.act_iters = 2;
    quantize_rnn_matrices(m);
    return m;
}

std::vector<std::string> problem_strs(const std::vector<ModelProblem> &ps) {
    std::vector<std::string> out;
    for (const auto &p : ps) out.push_back(p.problem.str());
    return out;
}

}  // namespace

TEST(ModelTune, ProblemsOfAQuantizedLstm) {
    const auto ps = model_problems(lstm2_model(), 1, 1, "tiled", 16);
    const std::vector<std::string> want = {
        "bgemv 516x129 W2A3 1 thread(s)",
        "bgemm 516x129x64 W2A3 tiled/16 1 thread(s)",
        "bgemm 516x100x64 W2A3 tiled/16 1 thread(s)",
        "lstm_cell 129x1 f32 1 thread(s)",
        "quantize_act 129 a3t2 1 thread(s)",
        "quantize_act 100 a3t2 1 thread(s)",
    };
    EXPECT_EQ(problem_strs(ps), want);
    // The recurrent product of both layers is one problem, called 2 x 64 times.
    ASSERT_EQ(ps[0].uses.size(), 2u);
    EXPECT_EQ(ps[0].uses[0], "layer 0 recurrent product");
    EXPECT_EQ(ps[0].calls, 128);
    EXPECT_EQ(ps[1].uses, std::vector<std::string>{"layer 1 input product (run, 64-step chunk)"});
    EXPECT_EQ(ps[1].calls, 1);
    EXPECT_EQ(ps[3].calls, 128);
    EXPECT_EQ(ps[5].calls, 64);  // every step's input, one sequence
    for (const auto &p : ps) EXPECT_GT(p.expected_us(), 0) << p.problem.str();
}

TEST(ModelTune, ProblemsOfABatchedLanguageModelWithAFloatDecoderAndGreedyActivations) {
    amq::ModelFile m = lstm2_model();
    m.shape.arch = amq::Arch::gru;
    m.shape.layers = 1;
    m.shape.input_size = 129;  // embedding width = hidden: one quantize_act length
    m.shape.vocab_size = 1000;
    m.act_method = "greedy";
    quantize_rnn_matrices(m);
    const auto ps = model_problems(m, 4, 2, "plane_major", 8);
    const std::vector<std::string> want = {
        "bgemm 387x129x4 W2A3 plane_major/8 2 thread(s)",
        "f32_gemv 1000x129 f32 2 thread(s)",
        "gru_cell 129x4 f32 2 thread(s)",
        "quantize_act 129 a3t0 2 thread(s)",
        "log_softmax 1000 f32 2 thread(s)",
    };
    EXPECT_EQ(problem_strs(ps), want);
    // A language model runs step by step: the input and the recurrent product
    // are the same 387x129 bgemm of 4 items, 2 x 64 calls.
    EXPECT_EQ(ps[0].calls, 128);
    EXPECT_EQ(ps[1].calls, 64 * 4);  // the float decoder runs once per item
    EXPECT_EQ(ps[3].calls, 64 * 4 * 2);
    EXPECT_EQ(ps[4].calls, 64 * 4);  // the log-softmax of every item
    EXPECT_THROW(model_problems(m, 0, 1, "tiled", 8), std::invalid_argument);
}

// Bits per matrix: each product with its matrix's bits; quantize_act for each
// distinct activation quantizer (ternary ones are not tunable).
TEST(ModelTune, ProblemsWithBitsPerMatrix) {
    amq::ModelFile m = lstm2_model();  // W2A3, act_iters 2
    m.quant["weight_hh_l1"].k = 4;
    m.matrix_bits["weight_hh_l1"] = {4, 1, "greedy"};
    m.matrix_bits["weight_ih_l1"] = {2, 2, "ternary"};
    const auto ps = model_problems(m, 1, 1, "tiled", 16);
    const std::vector<std::string> want = {
        "bgemv 516x129 W2A3 1 thread(s)",  // layer 0 recurrent
        "bgemv 516x129 W4A1 1 thread(s)",  // layer 1 recurrent
        "bgemm 516x100x64 W2A3 tiled/16 1 thread(s)",
        "bgemm 516x129x64 W2A2 tiled/16 1 thread(s)",
        "lstm_cell 129x1 f32 1 thread(s)",
        "quantize_act 129 a3t2 1 thread(s)",
        "quantize_act 100 a3t2 1 thread(s)",
        "quantize_act 129 a1t0 1 thread(s)",
        "quantize_act 100 a1t0 1 thread(s)",
    };
    EXPECT_EQ(problem_strs(ps), want);
    EXPECT_EQ(ps[5].calls, 128);  // per activation quantizer (ternary ones are not tunable)
}

// Every matrix of amq::weight_matrices: both directions, the projections, and
// quantize_act at every width the runner quantizes.
TEST(ModelTune, ProblemsOfABidirectionalProjectedLstm) {
    amq::ModelFile m = lstm2_model();
    m.shape.bidirectional = true;
    m.shape.proj_size = 64;
    quantize_rnn_matrices(m);
    const auto ps = model_problems(m, 1, 1, "tiled", 16);
    const std::vector<std::string> want = {
        "bgemv 516x64 W2A3 1 thread(s)",
        "bgemv 64x129 W2A3 1 thread(s)",
        "bgemm 516x128x64 W2A3 tiled/16 1 thread(s)",
        "bgemm 516x100x64 W2A3 tiled/16 1 thread(s)",
        "lstm_cell 129x1 f32 1 thread(s)",
        "quantize_act 129 a3t2 1 thread(s)",
        "quantize_act 128 a3t2 1 thread(s)",
        "quantize_act 100 a3t2 1 thread(s)",
        "quantize_act 64 a3t2 1 thread(s)",
    };
    EXPECT_EQ(problem_strs(ps), want);
    // Recurrent products and projections: 2 layers x 2 directions x 64 steps.
    EXPECT_EQ(ps[0].calls, 256);
    EXPECT_EQ(ps[0].uses, (std::vector<std::string>{
                              "layer 0 recurrent product", "layer 0 reverse recurrent product",
                              "layer 1 recurrent product", "layer 1 reverse recurrent product"}));
    EXPECT_EQ(ps[1].uses[1], "layer 0 reverse projection");
    EXPECT_EQ(ps[2].calls, 2);  // layer 1's input products, one per direction
    EXPECT_EQ(ps[4].calls, 256);
    EXPECT_EQ(ps[6].calls, 128);  // both directions of layer 1 quantize their 128-wide input
}

TEST(ModelTune, BudgetSplitFavoursTheExpensiveProblems) {
    const auto ps = model_problems(lstm2_model(), 1, 1, "tiled", 8);
    const auto b = split_budget(ps, 600);
    ASSERT_EQ(b.size(), ps.size());
    double sum = 0;
    for (size_t i = 0; i < b.size(); ++i) {
        EXPECT_GE(b[i], 0.5 * 600 / double(ps.size()) - 1e-9) << ps[i].problem.str();
        sum += b[i];
    }
    EXPECT_NEAR(sum, 600, 1e-6);
    for (size_t i = 0; i < ps.size(); ++i)
        for (size_t j = 0; j < ps.size(); ++j)
            if (ps[i].expected_us() > ps[j].expected_us()) EXPECT_GT(b[i], b[j]);
}

TEST(ModelTune, BgemmTakesBgemvsLayoutFromTheSchedulesFile) {
    const std::string dir = temp_dir("bgemm_layout");
    const Knobs d = hand_defaults("bgemv");
    EXPECT_EQ(bgemm_weight_layout(dir + "/none.json"),
              std::make_pair(d["layout"].get<std::string>(), d["tile"].get<int>()));
    update_schedules_file(
        dir + "/s.json", detect_cpu(), "14.0.0", "host",
        {bgemv_problem(64, 64, 1, 1), bgemv_knobs("interleaved", 32, 1, 64), 1, 2, utc_now()});
    EXPECT_EQ(bgemm_weight_layout(dir + "/s.json"), std::make_pair(std::string("interleaved"), 32));
    std::filesystem::remove_all(dir);
}
