/*
 * cray: a small raytracer in the manner of John Tsiombikas' C-ray, the program jitmem links
 * and runs as a workload. Spheres and planes, point lights, Phong shading, shadows and mirror
 * reflections; the scene is read from a file (or stdin) at start and the image is written to
 * stdout as a binary PPM.
 *
 * The output must be the same on every run and every machine, because tests pin its checksum:
 * no random numbers (anti-aliasing samples a fixed 2x2 grid), integer powers instead of pow(),
 * and the build turns off floating-point contraction so that no compiler fuses a*b+c.
 *
 * usage: cray [-s WIDTHxHEIGHT] [scene-file] > image.ppm
 *
 * Scene lines (C-ray's letters, plus "p" for planes; '#' starts a comment):
 *   c  px py pz  fov-degrees  tx ty tz            camera at p looking at t
 *   l  x y z  intensity                           point light
 *   s  x y z  radius  r g b  shininess  reflect   sphere
 *   p  nx ny nz  offset  r g b  shininess  reflect  checker  plane n.x = offset
 */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define MAX_OBJECTS 64
#define MAX_LIGHTS 8
#define MAX_DEPTH 5
#define EPSILON 1e-6

typedef struct { double x, y, z; } vec3;

enum shape { SPHERE, PLANE };

struct material {
  vec3 color;
  int shininess;  /* Phong exponent, an integer so that no pow() is needed */
  double reflect; /* 0 = matte, 1 = perfect mirror */
  int checker;    /* planes only: alternate color and its inverse in unit squares */
};

struct object {
  enum shape shape;
  vec3 position; /* sphere centre, or plane normal */
  double size;   /* sphere radius, or plane offset along its normal */
  struct material mat;
};

struct camera {
  vec3 position, target;
  double fov;
};

struct scene {
  struct object objects[MAX_OBJECTS];
  int object_count;
  vec3 lights[MAX_LIGHTS];
  double light_intensity[MAX_LIGHTS];
  int light_count;
  struct camera camera;
};

struct ray { vec3 origin, dir; };

struct hit {
  const struct object *object;
  double distance;
  vec3 point, normal;
};

static vec3 v3(double x, double y, double z) { vec3 v = {x, y, z}; return v; }
static vec3 add(vec3 a, vec3 b) { return v3(a.x + b.x, a.y + b.y, a.z + b.z); }
static vec3 sub(vec3 a, vec3 b) { return v3(a.x - b.x, a.y - b.y, a.z - b.z); }
static vec3 scale(vec3 a, double s) { return v3(a.x * s, a.y * s, a.z * s); }
static double dot(vec3 a, vec3 b) { return a.x * b.x + a.y * b.y + a.z * b.z; }
static vec3 cross(vec3 a, vec3 b) { return v3(a.y * b.z - a.z * b.y, a.z * b.x - a.x * b.z, a.x * b.y - a.y * b.x); }
static vec3 normalize(vec3 a) { double len = sqrt(dot(a, a)); return len > 0 ? scale(a, 1.0 / len) : a; }
static vec3 reflect(vec3 v, vec3 n) { return sub(v, scale(n, 2.0 * dot(v, n))); }

static double ipow(double base, int exponent) {
  double result = 1.0;
  while (exponent > 0) {
    if (exponent & 1) result *= base;
    base *= base;
    exponent >>= 1;
  }
  return result;
}

static int intersect(const struct object *obj, const struct ray *ray, double *distance) {
  if (obj->shape == SPHERE) {
    vec3 oc = sub(ray->origin, obj->position);
    double b = dot(oc, ray->dir);
    double c = dot(oc, oc) - obj->size * obj->size;
    double disc = b * b - c;
    if (disc < 0) return 0;
    double root = sqrt(disc);
    double t = -b - root;
    if (t < EPSILON) t = -b + root;
    if (t < EPSILON) return 0;
    *distance = t;
    return 1;
  }
  double denom = dot(obj->position, ray->dir);
  if (fabs(denom) < EPSILON) return 0;
  double t = (obj->size - dot(obj->position, ray->origin)) / denom;
  if (t < EPSILON) return 0;
  *distance = t;
  return 1;
}

static int nearest_hit(const struct scene *scene, const struct ray *ray, struct hit *hit) {
  hit->object = NULL;
  hit->distance = INFINITY;
  for (int i = 0; i < scene->object_count; i++) {
    double t;
    if (intersect(&scene->objects[i], ray, &t) && t < hit->distance) {
      hit->object = &scene->objects[i];
      hit->distance = t;
    }
  }
  if (!hit->object) return 0;
  hit->point = add(ray->origin, scale(ray->dir, hit->distance));
  hit->normal = hit->object->shape == SPHERE ? normalize(sub(hit->point, hit->object->position)) : hit->object->position;
  if (dot(hit->normal, ray->dir) > 0) hit->normal = scale(hit->normal, -1.0);
  return 1;
}

static int in_shadow(const struct scene *scene, vec3 point, vec3 light) {
  vec3 to_light = sub(light, point);
  double light_distance = sqrt(dot(to_light, to_light));
  struct ray ray = {point, scale(to_light, 1.0 / light_distance)};
  for (int i = 0; i < scene->object_count; i++) {
    double t;
    if (intersect(&scene->objects[i], &ray, &t) && t < light_distance) return 1;
  }
  return 0;
}

static vec3 surface_color(const struct hit *hit) {
  const struct material *mat = &hit->object->mat;
  if (!mat->checker) return mat->color;
  long parity = (long)floor(hit->point.x) + (long)floor(hit->point.z);
  return (parity & 1) ? v3(1.0 - mat->color.x, 1.0 - mat->color.y, 1.0 - mat->color.z) : mat->color;
}

static vec3 trace(const struct scene *scene, const struct ray *ray, int depth) {
  struct hit hit;
  if (depth > MAX_DEPTH || !nearest_hit(scene, ray, &hit)) return v3(0.05, 0.05, 0.1);
  const struct material *mat = &hit.object->mat;
  vec3 base = surface_color(&hit);
  vec3 color = scale(base, 0.1); /* ambient */
  vec3 point = add(hit.point, scale(hit.normal, 1e-4));
  for (int i = 0; i < scene->light_count; i++) {
    if (in_shadow(scene, point, scene->lights[i])) continue;
    vec3 to_light = normalize(sub(scene->lights[i], hit.point));
    double diffuse = dot(hit.normal, to_light);
    if (diffuse <= 0) continue;
    double intensity = scene->light_intensity[i];
    color = add(color, scale(base, diffuse * intensity));
    if (mat->shininess > 0) {
      double specular = dot(reflect(to_light, hit.normal), ray->dir);
      if (specular > 0) color = add(color, scale(v3(1, 1, 1), ipow(specular, mat->shininess) * intensity));
    }
  }
  if (mat->reflect > 0) {
    struct ray bounce = {point, normalize(reflect(ray->dir, hit.normal))};
    vec3 mirrored = trace(scene, &bounce, depth + 1);
    color = add(scale(color, 1.0 - mat->reflect), scale(mirrored, mat->reflect));
  }
  return color;
}

static int load_scene(FILE *in, const char *name, struct scene *scene) {
  char line[512];
  int number = 0;
  memset(scene, 0, sizeof *scene);
  scene->camera.position = v3(0, 1, -5);
  scene->camera.target = v3(0, 0, 0);
  scene->camera.fov = 45;
  while (fgets(line, sizeof line, in)) {
    number++;
    char *p = line;
    while (*p == ' ' || *p == '\t') p++;
    if (*p == '#' || *p == '\n' || *p == '\0') continue;
    struct object obj;
    memset(&obj, 0, sizeof obj);
    double x, y, z, a, r, g, b, reflect_amount;
    int shininess, checker;
    if (*p == 'c' && sscanf(p + 1, "%lf %lf %lf %lf %lf %lf %lf", &x, &y, &z, &a, &r, &g, &b) == 7) {
      scene->camera.position = v3(x, y, z);
      scene->camera.fov = a;
      scene->camera.target = v3(r, g, b);
    } else if (*p == 'l' && sscanf(p + 1, "%lf %lf %lf %lf", &x, &y, &z, &a) == 4) {
      if (scene->light_count == MAX_LIGHTS) { fprintf(stderr, "%s:%d: more than %d lights\n", name, number, MAX_LIGHTS); return -1; }
      scene->lights[scene->light_count] = v3(x, y, z);
      scene->light_intensity[scene->light_count++] = a;
    } else if (*p == 's' && sscanf(p + 1, "%lf %lf %lf %lf %lf %lf %lf %d %lf", &x, &y, &z, &a, &r, &g, &b, &shininess, &reflect_amount) == 9) {
      obj.shape = SPHERE;
      obj.position = v3(x, y, z);
      obj.size = a;
      obj.mat = (struct material){v3(r, g, b), shininess, reflect_amount, 0};
    } else if (*p == 'p' && sscanf(p + 1, "%lf %lf %lf %lf %lf %lf %lf %d %lf %d", &x, &y, &z, &a, &r, &g, &b, &shininess, &reflect_amount, &checker) == 10) {
      obj.shape = PLANE;
      obj.position = normalize(v3(x, y, z));
      obj.size = a;
      obj.mat = (struct material){v3(r, g, b), shininess, reflect_amount, checker};
    } else {
      fprintf(stderr, "%s:%d: cannot read this line: %s", name, number, line);
      return -1;
    }
    if (*p == 's' || *p == 'p') {
      if (scene->object_count == MAX_OBJECTS) { fprintf(stderr, "%s:%d: more than %d objects\n", name, number, MAX_OBJECTS); return -1; }
      scene->objects[scene->object_count++] = obj;
    }
  }
  return 0;
}

static unsigned char to_byte(double channel) {
  if (channel <= 0) return 0;
  if (channel >= 1) return 255;
  return (unsigned char)(channel * 255.0 + 0.5);
}

static void render(const struct scene *scene, int width, int height, unsigned char *pixels) {
  const struct camera *cam = &scene->camera;
  vec3 forward = normalize(sub(cam->target, cam->position));
  vec3 right = normalize(cross(v3(0, 1, 0), forward));
  vec3 up = cross(forward, right);
  double half_width = tan(cam->fov * 0.5 * 3.14159265358979323846 / 180.0);
  double aspect = (double)height / width;
  for (int y = 0; y < height; y++) {
    for (int x = 0; x < width; x++) {
      vec3 sum = v3(0, 0, 0);
      for (int s = 0; s < 4; s++) { /* a fixed 2x2 grid per pixel */
        double u = ((x + 0.25 + 0.5 * (s & 1)) / width * 2.0 - 1.0) * half_width;
        double v = (1.0 - (y + 0.25 + 0.5 * (s >> 1)) / height * 2.0) * half_width * aspect;
        struct ray ray = {cam->position, normalize(add(forward, add(scale(right, u), scale(up, v))))};
        sum = add(sum, trace(scene, &ray, 0));
      }
      unsigned char *px = pixels + 3 * ((size_t)y * width + x);
      px[0] = to_byte(sum.x * 0.25);
      px[1] = to_byte(sum.y * 0.25);
      px[2] = to_byte(sum.z * 0.25);
    }
  }
}

int main(int argc, char **argv) {
  int width = 160, height = 120;
  const char *scene_file = NULL;
  for (int i = 1; i < argc; i++) {
    if (strcmp(argv[i], "-s") == 0 && i + 1 < argc) {
      if (sscanf(argv[++i], "%dx%d", &width, &height) != 2 || width < 1 || height < 1 || width > 8192 || height > 8192) {
        fprintf(stderr, "cray: -s wants WIDTHxHEIGHT, each 1..8192; got %s\n", argv[i]);
        return 2;
      }
    } else if (argv[i][0] == '-' && argv[i][1] != '\0') {
      fprintf(stderr, "usage: cray [-s WIDTHxHEIGHT] [scene-file] > image.ppm\n");
      return 2;
    } else {
      scene_file = argv[i];
    }
  }
  FILE *in = scene_file && strcmp(scene_file, "-") != 0 ? fopen(scene_file, "r") : stdin;
  if (!in) { perror(scene_file); return 1; }
  static struct scene scene;
  int failed = load_scene(in, scene_file ? scene_file : "<stdin>", &scene);
  if (in != stdin) fclose(in);
  if (failed) return 1;

  unsigned char *pixels = malloc((size_t)width * height * 3);
  if (!pixels) { fprintf(stderr, "cray: out of memory for a %dx%d image\n", width, height); return 1; }
  render(&scene, width, height, pixels);
  printf("P6\n%d %d\n255\n", width, height);
  fwrite(pixels, 3, (size_t)width * height, stdout);
  free(pixels);
  return fflush(stdout) == 0 ? 0 : 1;
}
