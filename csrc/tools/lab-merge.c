// lab-merge: fold a LoRA adapter into its base and write a full checkpoint.
#include <stdio.h>
#include <string.h>

#include "checkpoint.h"
#include "common.h"

static void usage(void) {
    printf("usage: lab-merge --base BASE.h5 --adapter ADAPTER.h5 --out MERGED.h5\n"
           "\n"
           "Loads the base checkpoint (codelm-lab/checkpoint/1) and the adapter (codelm-lab/adapter/1),\n"
           "checks that the adapter was trained on this base (model config and the sha256 of its\n"
           "parameters), adds scale * B A to each adapted weight (scale = alpha / rank) and writes\n"
           "the result as a checkpoint of the same config, without optimizer state.\n"
           "\n"
           "  --config-sha256 HEX  recorded in the output's provenance\n");
}

int main(int argc, char **argv) {
    lab_init("lab-merge", argc, argv);
    const char *base = NULL, *adapter = NULL, *out = NULL;
    for (int i = 1; i < argc; i++) {
        const char *f = argv[i];
        if (!strcmp(f, "--help") || !strcmp(f, "-h")) { usage(); return 0; }
        if (i + 1 >= argc) lab_die("%s: expected a value (see --help)", f);
        if (!strcmp(f, "--base")) base = argv[++i];
        else if (!strcmp(f, "--adapter")) adapter = argv[++i];
        else if (!strcmp(f, "--out")) out = argv[++i];
        else if (!strcmp(f, "--config-sha256")) lab_set_config_sha256(argv[++i]);
        else lab_die("unknown flag '%s' (see --help)", f);
    }
    if (!base || !adapter || !out) lab_die("expected --base, --adapter and --out (see --help)");
    Model m;
    checkpoint_load(base, &m, &backend_cpu);
    adapter_load(adapter, &m, base);
    lab_add_input(base);
    lab_add_input(adapter);
    LoraConfig lc = m.lora->cfg;
    lora_merge(&m);
    checkpoint_save(out, &m, NULL);
    printf("merged %s (targets %s, rank %d, alpha %g) into %s: wrote %s\n", adapter,
           lora_format_targets(lc.targets), lc.rank, lc.alpha, base, out);
    model_free(&m);
    return 0;
}
