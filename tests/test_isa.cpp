// Every ISA variant of the multi-target kernels gives the same outputs as the
// default one. AMQ_ISA is read once per process, so each variant runs in its own
// process (the isa_probe program).
#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <sstream>
#include <string>

namespace {

struct ProbeRun {
    int status;
    std::string out;
};

ProbeRun run_probe(const std::string &isa) {
    std::string cmd = isa.empty() ? "env -u AMQ_ISA " : "env AMQ_ISA=" + isa + " ";
    cmd += AMQ_ISA_PROBE " 2>&1";
    ProbeRun r{-1, ""};
    FILE *p = popen(cmd.c_str(), "r");
    if (!p) return r;
    char buf[4096];
    size_t got;
    while ((got = fread(buf, 1, sizeof buf, p)) > 0) r.out.append(buf, got);
    r.status = pclose(p);
    return r;
}

std::string first_line(const std::string &s) { return s.substr(0, s.find('\n')); }

// Compares the probe outputs after the first line: packed words exactly, floats
// ("value scale") to 1e-6 of the scale of their terms (FMA contraction differs
// between the variants, which moves results by a few ulps of the terms).
// Returns the number of lines that differ.
int compare_outputs(const std::string &a, const std::string &b, std::string &first_diff) {
    std::istringstream sa(a), sb(b);
    std::string la, lb;
    std::getline(sa, la);
    std::getline(sb, lb);
    int diffs = 0, line = 1;
    while (true) {
        bool ga = bool(std::getline(sa, la)), gb = bool(std::getline(sb, lb));
        ++line;
        if (!ga || !gb) return diffs + (ga != gb);
        bool same;
        if (la.find('p') != std::string::npos) {
            char *end = nullptr;
            double x = std::strtod(la.c_str(), &end), scale = std::strtod(end, nullptr);
            double y = std::strtod(lb.c_str(), nullptr);
            same = std::abs(x - y) <= 1e-6 * scale;
        } else {
            same = la == lb;
        }
        if (!same && diffs++ == 0)
            first_diff = "line " + std::to_string(line) + ": " + la + " vs " + lb;
    }
}

}  // namespace

TEST(IsaVariants, SameOutputsAsDefault) {
    ProbeRun def = run_probe("");
    ASSERT_EQ(def.status, 0) << def.out;
    ASSERT_GT(def.out.size(), 1000u);
    for (std::string isa : {"avx512", "avx2", "sse41"}) {
        ProbeRun r = run_probe(isa);
        ASSERT_EQ(r.status, 0) << isa << ": " << r.out;
        // The cap is honoured (a CPU without the ISA falls back further).
        if (isa != "avx512" || first_line(def.out) == "isa avx512")
            EXPECT_TRUE(first_line(r.out) == "isa " + isa ||
                        (isa == "avx512" && first_line(r.out) == first_line(def.out)))
                << first_line(r.out);
        std::string first;
        EXPECT_EQ(compare_outputs(def.out, r.out, first), 0)
            << "outputs of the " << isa << " variant differ, first at " << first;
    }
}

TEST(IsaVariants, UnknownValueIsAClearError) {
    ProbeRun r = run_probe("avx9000");
    EXPECT_NE(r.status, 0);
    EXPECT_NE(r.out.find("AMQ_ISA='avx9000' is not a kernel variant"), std::string::npos) << r.out;
}
