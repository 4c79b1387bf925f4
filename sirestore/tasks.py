"""The degradation families an all-in-one model restores (no torch import: the CLI lists them)."""

TASKS = ("noise", "blur", "jpeg", "inpaint", "rain", "haze", "low_light", "low_resolution", "speckle")

# degradation spec name -> its task; None for `clean` (no degradation: no task label)
TASK_OF: dict[str, str | None] = {
    "clean": None,
    "awgn": "noise",
    "poisson_gaussian": "noise",
    "gaussian_blur": "blur",
    "motion_blur": "blur",
    "jpeg": "jpeg",
    "inpaint": "inpaint",
    "rain": "rain",
    "haze": "haze",
    "low_light": "low_light",
    "sr": "low_resolution",
    "speckle": "speckle",
}
