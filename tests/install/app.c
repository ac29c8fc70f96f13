/* app.c — built by CI against the *installed* library through pkg-config, to
 * prove `cc app.c $(pkg-config --cflags --libs kinfer)` works. */
#include <kinfer.h>
#include <stdio.h>

int main(int argc, char **argv)
{
    if (argc < 2) {
        fprintf(stderr, "usage: %s model.gguf\n", argv[0]);
        return 2;
    }
    kinfer_model *model = NULL;
    kinfer_status st = kinfer_model_load(argv[1], NULL, &model);
    if (st != KINFER_OK) {
        fprintf(stderr, "%s: %s\n", kinfer_status_str(st), kinfer_model_errmsg(model));
        kinfer_model_free(model);
        return 1;
    }
    const char *arch = "?";
    kinfer_meta_get_str(model, "general.architecture", &arch);
    printf("kinfer %s: %s, %lld tensors\n", kinfer_version(), arch,
           (long long)kinfer_tensor_count(model));
    kinfer_model_free(model);
    return 0;
}
