// common: sha256 against the FIPS 180-4 example vectors, RNG reproducibility and range, the
// OpenBLAS core check, shell-quoted command lines, byte counts with K/M/G suffixes (and one error
// line naming the flag for each malformed or out-of-range one, checked in a child process).
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "common.h"
#include "test_util.h"

static void parse_size_or_die(const char *s) { lab_parse_size("--max-bytes", s); }

static void test_parse_size(void) {
    CHECK(lab_parse_size("--max-bytes", "1") == 1 && lab_parse_size("--max-bytes", "40K") == 40960 &&
          lab_parse_size("--max-bytes", "3M") == 3ull << 20 && lab_parse_size("--max-bytes", "2G") == 2ull << 30,
          "sizes N, NK, NM and NG");
    CHECK(lab_parse_size("--max-bytes", "4294967296G") == 1ull << 62, "2^62 bytes, the largest size");
    static const char *const bad[] = {"0", "", "K", "1.5G", "12T", "5k", "5KB", "5 ", "-1K", "4294967297G",
                                      "99999999999999999999"};
    char what[64];
    for (size_t i = 0; i < sizeof bad / sizeof *bad; i++) {
        snprintf(what, sizeof what, "size '%s'", bad[i]);
        test_expect_error(parse_size_or_die, bad[i], "--max-bytes: expected a size", what);
    }
}

int main(int argc, char **argv) {
    char *args[] = {argv[0], "--flag", "two words", "it's", NULL};
    lab_init("test_common", 4, args);
    (void)argc;

    char hex[65];
    sha256_hex("abc", 3, hex);
    CHECK(!strcmp(hex, "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad"), "sha256(abc) = %s", hex);
    sha256_hex("", 0, hex);
    CHECK(!strcmp(hex, "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855"), "sha256('') = %s", hex);
    const char *two = "abcdbcdecdefdefgefghfghighijhijkijkljklmklmnlmnomnopnopq";
    sha256_hex(two, strlen(two), hex);
    CHECK(!strcmp(hex, "248d6a61d20638b8e5c026930c3e6039a33ce45964ff2167f6ecedd419db06c1"), "sha256(448 bits) = %s", hex);
    // a million 'a', fed in uneven pieces to exercise the buffering
    Sha256 s;
    sha256_init(&s);
    char a[997];
    memset(a, 'a', sizeof a);
    size_t left = 1000000;
    while (left) { size_t k = left < sizeof a ? left : sizeof a; sha256_update(&s, a, k); left -= k; }
    sha256_final(&s, hex);
    CHECK(!strcmp(hex, "cdc76e5c9914fb9281a1c7e284d73e67f1809a48a497200e046d39ccc7112cd0"), "sha256(1e6 a) = %s", hex);

    Rng r1, r2;
    rng_seed(&r1, 42);
    rng_seed(&r2, 42);
    int same = 1;
    for (int i = 0; i < 1000; i++) same &= rng_u64(&r1) == rng_u64(&r2);
    CHECK(same, "same seed, same stream");
    rng_seed(&r2, 43);
    CHECK(rng_u64(&r1) != rng_u64(&r2), "another seed, another stream");
    double sum = 0, sum2 = 0;
    int counts[10] = {0}, in_range = 1;
    for (int i = 0; i < 100000; i++) {
        float u = rng_uniform(&r1);
        in_range &= u >= 0 && u < 1;
        uint32_t k = rng_below(&r1, 10);
        in_range &= k < 10;
        counts[k < 10 ? k : 0]++;
        double z = rng_normal(&r1);
        sum += z; sum2 += z * z;
    }
    CHECK(in_range, "uniform in [0,1), below in [0,n)");
    for (int k = 0; k < 10; k++) CHECK(abs(counts[k] - 10000) < 500, "rng_below bucket %d: %d of 100000", k, counts[k]);
    double mean = sum / 1e5, var = sum2 / 1e5 - mean * mean;
    CHECK(fabs(mean) < 0.02 && fabs(var - 1) < 0.03, "normal mean %.4f var %.4f", mean, var);

    // The core in use is never a generic fallback on a CPU that has a proper kernel set.
    const char *core = lab_blas_core();
    CHECK(!(lab_blas_core_for_cpu() && lab_blas_core_is_fallback(core) && !getenv("OPENBLAS_CORETYPE")),
          "OpenBLAS runs fallback core %s on a CPU that calls for %s", core, lab_blas_core_for_cpu());
    CHECK(lab_blas_core_is_fallback("Prescott") && !lab_blas_core_is_fallback("Haswell") &&
          !lab_blas_core_is_fallback("SkylakeX"), "fallback classification");
    printf("blas core: %s, threads %d, cpu %s\n", core, lab_threads(), lab_cpu_name());

    CHECK(!strcmp(lab_command_line(), "test_common --flag 'two words' 'it'\\''s'"), "command line: %s", lab_command_line());
    test_parse_size();
    return test_summary();
}
