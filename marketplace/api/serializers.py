"""Serializer pieces every domain's API shares: fast flat output (``FlatOutput``), shallow-copied
input fields (``ShallowFields``) and the error envelope."""

from __future__ import annotations

import copy
from typing import Any, ClassVar

from rest_framework import relations, serializers
from rest_framework.fields import Field, SkipField
from rest_framework.relations import PKOnlyObject

Plan = tuple[tuple[str, Field[Any, Any, Any, Any] | None, str | None], ...]


class FlatOutput(serializers.BaseSerializer[Any]):
    """Mixin for a flat, read-only output serializer: its fields are built once per class.

    DRF builds every field of every serializer instance (a ModelSerializer introspects its model
    each time, and declared fields are deep-copied); for one object that costs more than the
    rendering. Here the first instance's bound fields become the class's plan and later
    instances render through it: ``field.get_attribute`` then ``field.to_representation``, as
    ``Serializer.to_representation`` does, and method fields call this instance's method (so
    they may use its context). A class with a nested serializer or a hyperlinked field (whose
    output depends on the instance's context) renders the DRF way.
    """

    _flat_plan: ClassVar[Plan | None]

    @classmethod
    def _plan(cls) -> Plan | None:
        if "_flat_plan" not in cls.__dict__:
            prototype: Any = cls()
            fields = list(prototype._readable_fields)
            contextual = (serializers.BaseSerializer, relations.HyperlinkedRelatedField)
            flat = not any(
                isinstance(f, contextual)
                or isinstance(getattr(f, "child_relation", None), contextual)
                for f in fields
            )
            cls._flat_plan = (
                tuple(
                    (str(f.field_name), None, str(f.method_name))
                    if isinstance(f, serializers.SerializerMethodField)
                    else (str(f.field_name), f, None)
                    for f in fields
                )
                if flat
                else None
            )
        return cls._flat_plan

    def to_representation(self, instance: Any) -> dict[str, Any]:
        plan = self._plan()
        if plan is None:
            return super().to_representation(instance)  # type: ignore[no-any-return]
        ret: dict[str, Any] = {}
        for name, field, method in plan:
            if field is None:
                ret[name] = getattr(self, method or "")(instance)
                continue
            try:
                attribute = field.get_attribute(instance)
            except SkipField:
                continue
            empty = (attribute.pk if isinstance(attribute, PKOnlyObject) else attribute) is None
            ret[name] = None if empty else field.to_representation(attribute)
        return ret


class ShallowFields(serializers.Serializer[Any]):
    """Mixin for an input serializer of plain declared fields, on a hot path: each instance
    binds shallow copies of the class's declared fields where DRF deep-copies them (which
    re-creates every field, its validators, and a nested serializer with its fields, per
    request). Sound because validating changes no field's state; DRF's plain fields, lists of
    them and nested plain serializers keep none."""

    def get_fields(self) -> dict[str, Field[Any, Any, Any, Any]]:
        return {name: copy.copy(field) for name, field in self._declared_fields.items()}


class ErrorDetailOut(serializers.Serializer[Any]):
    code = serializers.CharField(help_text="Stable, machine-readable reason.")
    message = serializers.CharField(help_text="Human-readable, in the request's language.")
    field = serializers.CharField(allow_null=True, help_text="The input at fault, if any.")


class ErrorOut(serializers.Serializer[Any]):
    error = ErrorDetailOut()
