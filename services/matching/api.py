"""Matching's HTTP routes: the hub's supporter roster (staff only)."""

from typing import Annotated

from fastapi import APIRouter, Depends, Path
from pydantic import BaseModel, ConfigDict, Field, StrictBool
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from services.matching import domain, handlers, repository
from shared.auth import Action, PublicKey, StaffPrincipal
from shared.contract.vocabulary import Language, SupportField
from shared.http import problems, staff_may


class SupporterBody(BaseModel):
    model_config = ConfigDict(extra="forbid")

    display_name: str = Field(min_length=1, max_length=200)
    fields: list[SupportField] = Field(min_length=1)
    languages: list[Language] = Field(min_length=1)
    active: StrictBool = True


class SupporterView(SupporterBody):
    id: str
    hub: str


def _view(supporter: domain.Supporter) -> SupporterView:
    return SupporterView(
        id=supporter.id,
        hub=supporter.hub,
        display_name=supporter.display_name,
        fields=list(supporter.fields),
        languages=list(supporter.languages),
        active=supporter.active,
    )


def create_router(sessions: async_sessionmaker[AsyncSession], *, auth_key: PublicKey) -> APIRouter:
    router = APIRouter(prefix="/v1/hubs/{hub}/supporters", tags=["roster"])
    manage = staff_may(auth_key, Action.MANAGE_ROSTER)
    read = staff_may(auth_key, Action.READ)

    @router.put(
        "/{supporter_id}",
        response_model=SupporterView,
        summary="Register or update a supporter",
        responses=problems(400, 401, 403, 404, 413, 422),
    )
    async def put_supporter(
        hub: str,
        _: Annotated[StaffPrincipal, Depends(manage)],
        supporter_id: Annotated[str, Path(pattern=r"^[A-Za-z0-9._-]{1,64}$")],
        body: SupporterBody,
    ) -> SupporterView:
        supporter = domain.Supporter(
            id=supporter_id,
            hub=hub,
            display_name=body.display_name,
            fields=tuple(dict.fromkeys(body.fields)),
            languages=tuple(dict.fromkeys(body.languages)),
            active=body.active,
        )
        async with sessions.begin() as session:
            await handlers.register_supporter(session, supporter)
        return _view(supporter)

    @router.get(
        "", response_model=list[SupporterView], summary="The hub's supporter roster", responses=problems(401, 404, 422)
    )
    async def list_supporters(hub: str, _: Annotated[StaffPrincipal, Depends(read)]) -> list[SupporterView]:
        async with sessions() as session:
            return [_view(s) for s in await repository.list_supporters(session, hub)]

    return router
