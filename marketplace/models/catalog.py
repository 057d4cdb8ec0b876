"""The hardware catalog and 算力度量, the standard compute unit (SCU).

One SCU-hour is one hour of 1 PFLOP/s of dense peak throughput at the reference precision
(``SCU_PRECISION``, BF16/FP16 by default). A pool unit's SCU is its devices' dense peak at that
precision, summed, in PFLOP/s: an H100 SXM unit of one GPU is about 0.99 SCU, an Ascend 910B
about 0.32. Specs are the vendors' published figures, each with its source.
"""

from __future__ import annotations

from decimal import Decimal

from django.conf import settings
from django.db import models
from django.db.models import Q
from django.utils.translation import gettext_lazy as _

TFLOPS_PER_PFLOPS = Decimal(1000)


class DeviceKind(models.TextChoices):
    GPU = "gpu", _("GPU")
    NPU = "npu", _("NPU / AI accelerator")
    CPU = "cpu", _("Server CPU")


class Precision(models.TextChoices):
    FP64 = "fp64", "FP64"
    FP32 = "fp32", "FP32"
    BF16 = "bf16", "BF16/FP16"
    INT8 = "int8", "INT8"


class DeviceModelManager(models.Manager["DeviceModel"]):
    def get_by_natural_key(self, slug: str) -> DeviceModel:
        return self.get(slug=slug)


class DeviceModel(models.Model):
    """A device's published specs. Peak figures are dense (no sparsity), per device."""

    slug = models.SlugField(max_length=64, unique=True)
    vendor = models.CharField(_("vendor"), max_length=64)
    name = models.CharField(_("name"), max_length=128)
    kind = models.CharField(_("kind"), max_length=8, choices=DeviceKind.choices)
    memory_gb = models.DecimalField(_("memory (GB)"), max_digits=8, decimal_places=1)
    memory_bandwidth_gbps = models.DecimalField(
        _("memory bandwidth (GB/s)"), max_digits=8, decimal_places=1
    )
    fp64_tflops = models.DecimalField(_("FP64 TFLOPS"), max_digits=9, decimal_places=3)
    fp32_tflops = models.DecimalField(_("FP32 TFLOPS"), max_digits=9, decimal_places=3)
    bf16_tflops = models.DecimalField(_("BF16/FP16 dense TFLOPS"), max_digits=9, decimal_places=3)
    int8_tops = models.DecimalField(_("INT8 dense TOPS"), max_digits=9, decimal_places=3)
    tdp_watts = models.PositiveIntegerField(_("TDP (W)"))
    source_url = models.URLField(_("source"), max_length=500)
    notes = models.CharField(_("notes"), max_length=300, blank=True)
    active = models.BooleanField(_("listed"), default=True)

    objects = DeviceModelManager()

    class Meta:
        ordering = ["vendor", "name"]
        constraints = [
            models.CheckConstraint(
                condition=Q(kind__in=DeviceKind.values), name="device_kind_valid"
            ),
            models.CheckConstraint(
                condition=Q(
                    memory_gb__gt=0,
                    bf16_tflops__gte=0,
                    fp32_tflops__gte=0,
                    fp64_tflops__gte=0,
                    int8_tops__gte=0,
                    tdp_watts__gt=0,
                ),
                name="device_specs_positive",
            ),
        ]

    def __str__(self) -> str:
        return f"{self.vendor} {self.name}"

    def natural_key(self) -> tuple[str]:
        return (self.slug,)

    def peak_tflops(self, precision: str | None = None) -> Decimal:
        chosen = precision or settings.SCU_PRECISION
        field = {
            "fp64": "fp64_tflops",
            "fp32": "fp32_tflops",
            "bf16": "bf16_tflops",
            "int8": "int8_tops",
        }[chosen]
        value: Decimal = getattr(self, field)
        return value

    def scu(self, devices: int = 1, precision: str | None = None) -> Decimal:
        """SCU of ``devices`` of this model: PFLOP/s of dense peak at the reference precision."""
        return self.peak_tflops(precision) * devices / TFLOPS_PER_PFLOPS
