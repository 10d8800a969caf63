/*
 * The C API from C: a uniform box projected with Siddon equals mu times the analytic
 * chord of every pixel's ray; backprojecting ones gives the sum of the chords (the
 * adjoint identity <A 1, 1> = <1, A^T 1>); the error paths give their statuses and
 * messages; a circular scan reconstructed with FDK comes back at its attenuation.
 *
 * Built and run by tests/c_program.rs; exits 0 on success, 1 with the reasons printed.
 */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "xray_projector.h"

#define N 32       /* voxels per axis, 1 mm each: the box is [-16, 16]^3 */
#define ROWS 16
#define COLS 16
#define MU 0.02    /* 1/mm */

static int failures = 0;

#define CHECK(condition, ...)                                          \
    do {                                                               \
        if (!(condition)) {                                            \
            fprintf(stderr, "FAILED (%s:%d): ", __FILE__, __LINE__);   \
            fprintf(stderr, __VA_ARGS__);                              \
            fprintf(stderr, "\n");                                     \
            failures++;                                                \
        }                                                              \
    } while (0)

/* A call that must succeed; on failure, print the status and message and stop. */
#define REQUIRE_OK(call)                                               \
    do {                                                               \
        XrayStatus status_ = (call);                                   \
        if (status_ != XRAY_STATUS_OK) {                               \
            fprintf(stderr, "FAILED (%s:%d): %s gave %s: %s\n",        \
                    __FILE__, __LINE__, #call,                         \
                    xray_status_name((int)status_),                    \
                    xray_last_error_message());                        \
            return 1;                                                  \
        }                                                              \
    } while (0)

/* Length of the segment from s to p inside the box [lo, hi]^3 (slab method). */
static double chord(const double s[3], const double p[3], double lo, double hi) {
    double t0 = 0.0, t1 = 1.0, length = 0.0;
    int k;
    for (k = 0; k < 3; k++) {
        double d = p[k] - s[k];
        length += d * d;
        if (d == 0.0) {
            if (s[k] < lo || s[k] > hi) {
                return 0.0;
            }
        } else {
            double ta = (lo - s[k]) / d, tb = (hi - s[k]) / d;
            if (ta > tb) {
                double t = ta;
                ta = tb;
                tb = t;
            }
            if (ta > t0) t0 = ta;
            if (tb < t1) t1 = tb;
        }
    }
    return t1 > t0 ? (t1 - t0) * sqrt(length) : 0.0;
}

/* The message is set and not empty. */
static int has_message(void) {
    const char *message = xray_last_error_message();
    return message != NULL && message[0] != '\0';
}

int main(void) {
    const size_t voxels = (size_t)N * N * N;
    const size_t pixels = (size_t)ROWS * COLS;
    /* source, detector centre, u, v (ASTRA cone_vec order) */
    const double vectors[XRAY_VECTORS_PER_VIEW] = {
        -500.0, 0.0, 0.0, 300.0, 0.0, 0.0, 0.0, 1.0, 0.0, 0.0, 0.0, 1.0,
    };
    XrayProjector *projector = NULL;
    XrayVolumeGrid grid;
    float *volume, *projections, *ones, *backprojected;
    double chords[ROWS * COLS], chord_sum = 0.0, volume_sum = 0.0;
    size_t i;
    int r, c;

    printf("xray-projector C API %s\n", xray_version());
    REQUIRE_OK(xray_projector_new(XRAY_BACKEND_CPU, &projector));
    CHECK(projector != NULL, "no handle");
    CHECK(xray_projector_backend(projector) == XRAY_BACKEND_CPU, "not on the CPU");
    CHECK(xray_projector_fallback_reason(projector) == NULL, "a CPU projector has no fallback");

    grid = xray_volume_grid_centered(N, N, N, 1.0, 1.0, 1.0);
    CHECK(grid.origin[0] == -16.0 && grid.origin[1] == -16.0 && grid.origin[2] == -16.0,
          "centred origin (%g, %g, %g)", grid.origin[0], grid.origin[1], grid.origin[2]);
    CHECK(grid.shape[0] == N && grid.direction[0] == 1.0 && grid.direction[4] == 1.0
              && grid.direction[8] == 1.0 && grid.direction[1] == 0.0,
          "centred grid: shape and identity direction");

    volume = malloc(voxels * sizeof(float));
    projections = malloc(pixels * sizeof(float));
    ones = malloc(pixels * sizeof(float));
    backprojected = malloc(voxels * sizeof(float));
    if (!volume || !projections || !ones || !backprojected) {
        fprintf(stderr, "out of memory\n");
        return 1;
    }
    for (i = 0; i < voxels; i++) {
        volume[i] = (float)MU;
    }

    /* Forward: p = mu * chord for every pixel. */
    REQUIRE_OK(xray_forward(projector, volume, voxels, &grid, vectors, 1, ROWS, COLS,
                            XRAY_BEAM_CONE, XRAY_METHOD_SIDDON, projections, pixels));
    CHECK(xray_last_error_message()[0] == '\0', "the message is empty after a success");
    for (r = 0; r < ROWS; r++) {
        for (c = 0; c < COLS; c++) {
            double pixel[3], want, got;
            int k;
            for (k = 0; k < 3; k++) {
                pixel[k] = vectors[3 + k] + (c - (COLS - 1) / 2.0) * vectors[6 + k]
                           + (r - (ROWS - 1) / 2.0) * vectors[9 + k];
            }
            chords[r * COLS + c] = chord(vectors, pixel, -16.0, 16.0);
            chord_sum += chords[r * COLS + c];
            want = MU * chords[r * COLS + c];
            got = projections[r * COLS + c];
            /* Siddon is exact for a uniform box: p = mu * chord to float rounding (the
               sum of about 32 float path lengths). */
            CHECK(want > 0.0 && fabs(got - want) <= 2e-5 * want,
                  "pixel (%d, %d): p = %.8g, mu * chord = %.8g", r, c, got, want);
        }
    }

    /* A wrong output length is refused, with a message, and nothing is written. */
    projections[0] = -1.0f;
    CHECK(xray_forward(projector, volume, voxels, &grid, vectors, 1, ROWS, COLS,
                       XRAY_BEAM_CONE, XRAY_METHOD_SIDDON, projections, pixels - 1)
              == XRAY_STATUS_INVALID_ARGUMENT,
          "a wrong out_len is an invalid argument");
    CHECK(has_message(), "a wrong out_len has a message");
    CHECK(strstr(xray_last_error_message(), "out_len") != NULL, "the message names out_len: %s",
          xray_last_error_message());
    CHECK(projections[0] == -1.0f, "nothing is written on failure");

    /* Other misuses: a bad enum value, a NULL handle. */
    CHECK(xray_forward(projector, volume, voxels, &grid, vectors, 1, ROWS, COLS,
                       XRAY_BEAM_CONE, 42, projections, pixels)
              == XRAY_STATUS_INVALID_ARGUMENT,
          "an unknown method is an invalid argument");
    CHECK(xray_forward(NULL, volume, voxels, &grid, vectors, 1, ROWS, COLS,
                       XRAY_BEAM_CONE, XRAY_METHOD_SIDDON, projections, pixels)
              == XRAY_STATUS_INVALID_ARGUMENT,
          "a NULL handle is an invalid argument");
    CHECK(has_message(), "a NULL handle has a message");

    /* NaN in the volume: the non-finite status. */
    volume[N * N * (N / 2) + N * 3 + 5] = NAN;
    {
        XrayStatus status = xray_forward(projector, volume, voxels, &grid, vectors, 1, ROWS,
                                         COLS, XRAY_BEAM_CONE, XRAY_METHOD_SIDDON, projections,
                                         pixels);
        CHECK(status == XRAY_STATUS_NON_FINITE, "NaN in the volume gives %s, not %s",
              xray_status_name((int)status), "XRAY_STATUS_NON_FINITE");
    }
    CHECK(has_message(), "NaN has a message");
    volume[N * N * (N / 2) + N * 3 + 5] = (float)MU;

    /* Backward of ones: the voxel sum is the sum of the chords. */
    for (i = 0; i < pixels; i++) {
        ones[i] = 1.0f;
    }
    REQUIRE_OK(xray_backward(projector, ones, pixels, vectors, 1, ROWS, COLS, XRAY_BEAM_CONE,
                             &grid, XRAY_METHOD_SIDDON, backprojected, voxels));
    for (i = 0; i < voxels; i++) {
        volume_sum += backprojected[i];
    }
    /* <A 1, 1> = <1, A^T 1>: the same lengths summed in another order (per voxel, in
       float, then over 32768 voxels in double), so only float rounding differs. */
    CHECK(fabs(volume_sum - chord_sum) <= 2e-5 * chord_sum,
          "sum of A^T 1 = %.8g, sum of chords = %.8g", volume_sum, chord_sum);
    CHECK(xray_backward(projector, ones, pixels, vectors, 1, ROWS, COLS, XRAY_BEAM_CONE,
                        &grid, XRAY_METHOD_SIDDON, backprojected, voxels + 1)
              == XRAY_STATUS_INVALID_ARGUMENT,
          "a wrong backward out_len is an invalid argument");

    /* FDK of a circular scan of the box: its centre comes back at mu. */
    {
        XrayCircularScan scan = xray_circular_scan_new(400.0, 600.0, 90, 48, 48, 2.0);
        size_t rays = scan.views * scan.rows * scan.cols;
        double *scan_vectors = malloc(scan.views * XRAY_VECTORS_PER_VIEW * sizeof(double));
        float *sinogram = malloc(rays * sizeof(float));
        XrayVolumeGrid fdk_grid = xray_volume_grid_centered(16, 16, 16, 2.0, 2.0, 2.0);
        float *reconstruction = malloc(16 * 16 * 16 * sizeof(float));
        float centre;
        if (!scan_vectors || !sinogram || !reconstruction) {
            fprintf(stderr, "out of memory\n");
            return 1;
        }
        REQUIRE_OK(xray_circular_vectors(&scan, scan_vectors,
                                         scan.views * XRAY_VECTORS_PER_VIEW));
        CHECK(scan_vectors[0] == -400.0 && scan_vectors[3] == 200.0,
              "view 0: source x %g, detector x %g", scan_vectors[0], scan_vectors[3]);
        REQUIRE_OK(xray_forward(projector, volume, voxels, &grid, scan_vectors, scan.views,
                                scan.rows, scan.cols, scan.beam, XRAY_METHOD_SIDDON, sinogram,
                                rays));
        REQUIRE_OK(xray_fdk(projector, sinogram, rays, &scan, &fdk_grid, XRAY_FILTER_RAM_LAK,
                            reconstruction, 16 * 16 * 16));
        centre = reconstruction[16 * 16 * 8 + 16 * 8 + 8];
        CHECK(fabs(centre - MU) <= 0.1 * MU, "FDK centre %.6g, want %.6g", centre, MU);
        sinogram[7] = NAN;
        CHECK(xray_fdk(projector, sinogram, rays, &scan, &fdk_grid, XRAY_FILTER_RAM_LAK,
                       reconstruction, 16 * 16 * 16)
                  == XRAY_STATUS_NON_FINITE,
              "NaN projections in FDK give XRAY_STATUS_NON_FINITE");
        free(scan_vectors);
        free(sinogram);
        free(reconstruction);
    }

    /* CUDA: available (then it works) or refused with the reason and a NULL handle. */
    {
        XrayProjector *gpu = (XrayProjector *)&failures; /* any non-NULL value */
        XrayStatus status = xray_projector_new(XRAY_BACKEND_CUDA, &gpu);
        if (status == XRAY_STATUS_OK) {
            CHECK(xray_projector_backend(gpu) == XRAY_BACKEND_CUDA, "a CUDA handle on CUDA");
            xray_projector_free(gpu);
        } else {
            CHECK(status == XRAY_STATUS_CUDA_UNAVAILABLE, "CUDA refused with %s",
                  xray_status_name((int)status));
            CHECK(gpu == NULL, "*out is NULL after a failure");
            CHECK(has_message(), "CUDA unavailable has a message");
        }
    }

    xray_projector_free(projector);
    xray_projector_free(NULL);
    free(volume);
    free(projections);
    free(ones);
    free(backprojected);
    if (failures != 0) {
        fprintf(stderr, "%d check(s) failed\n", failures);
        return 1;
    }
    printf("all checks passed\n");
    return 0;
}
