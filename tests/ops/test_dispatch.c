/*
 * test_dispatch.c — the ISA level chosen by kiln_kernels_init and forced by
 * KILN_ISA. The choice is made once per process, so the test runs itself as a
 * child with each setting and reads back the name the child prints.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "kernels/kernels_impl.h"
#include "test.h"

/* Runs this program as "child" with KILN_ISA=value (NULL: unset); returns the
 * level name it printed, in out. */
static int child_isa(const char *value, char *out, size_t cap) {
    char cmd[512];
    if (value)
        snprintf(cmd, sizeof cmd, "KILN_ISA='%s' /proc/%d/exe child", value, (int)getpid());
    else
        snprintf(cmd, sizeof cmd, "env -u KILN_ISA /proc/%d/exe child", (int)getpid());
    FILE *f = popen(cmd, "r");
    if (!f) return -1;
    if (!fgets(out, (int)cap, f)) out[0] = 0;
    out[strcspn(out, "\n")] = 0;
    return pclose(f);
}

int main(int argc, char **argv) {
    if (argc > 1 && strcmp(argv[1], "child") == 0) {
        printf("%s\n", kiln_kernels_isa());
        return 0;
    }
    const char *names[KILN_ISA_COUNT] = {"ref", "avx2", "avx512"};
    int best = 0;
    for (int l = 0; l < KILN_ISA_COUNT; l++) {
        const kiln_kernel_table *t = kiln_kernels_table((kiln_isa)l);
        if (l == 0) CHECK(t != NULL); /* the reference always runs */
        if (t) {
            best = l;
            CHECK(strcmp(t->name, names[l]) == 0);
            /* every table is complete */
            const kiln_kernel_table *ref = kiln_kernels_table(KILN_ISA_REF);
            for (int ty = 0; ty < KILN_DTYPE_COUNT; ty++) /* every type the reference has */
                CHECK_MSG(!ref->mm[ty] == !t->mm[ty], "%s lacks %s", t->name, kiln_dtype_name(ty));
            CHECK(t->quant_act);
            CHECK(t->dot && t->axpy && t->add && t->rmsnorm && t->softmax && t->swiglu);
        }
    }
    printf("this CPU runs up to %s\n", names[best]);
    CHECK(kiln_kernels_table(KILN_ISA_COUNT) == NULL);

    char got[64];
    CHECK(child_isa(NULL, got, sizeof got) == 0 && strcmp(got, names[best]) == 0);
    CHECK(child_isa("bogus", got, sizeof got) == 0 && strcmp(got, names[best]) == 0);
    for (int l = 0; l < KILN_ISA_COUNT; l++) {
        /* a forced level never exceeds what the CPU has */
        const char *want = names[l <= best ? l : best];
        CHECK_MSG(child_isa(names[l], got, sizeof got) == 0 && strcmp(got, want) == 0, "KILN_ISA=%s gave %s",
                  names[l], got);
    }
    TEST_MAIN_END();
}
